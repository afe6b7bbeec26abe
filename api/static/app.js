// energyhost web pages: shared helpers (token, API calls, DOM building without innerHTML, words for
// states and severities in zh/en, site-local times with their zone, downloads, charts, role routing).
"use strict";

const EH = (() => {
  const lang = document.body.dataset.lang === "en" ? "en" : "zh";
  const page = document.body.dataset.page;
  const tr = (zh, en) => (lang === "zh" ? zh : en);
  // the pages each role may use; the first one is the role's home
  const PAGES = {
    admin: ["console", "fleet", "manager"], engineer: ["console", "fleet"],
    customer_manager: ["manager", "fleet", "console"], customer: ["customer"],
  };
  const PAGE_NAMES = {
    console: ["告警监控台", "Alarm console"], fleet: ["站点总览", "Fleet overview"],
    manager: ["我的客户", "My customers"], customer: ["我的能源", "My energy"],
  };
  let glossary = null;
  const names = { sites: new Map(), devices: new Map(), users: new Map() };

  // A token handed over in the URL fragment is stored and removed from the address bar at once.
  function takeFragmentToken() {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem("eh_token", decodeURIComponent(m[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
  }

  const token = () => sessionStorage.getItem("eh_token");

  function toLogin() {
    // come back here after signing in (e.g. the survey link of a report e-mail)
    const next = location.pathname + location.search;
    location.href = "/web/login?lang=" + lang + (page !== "login" ? "&next=" + encodeURIComponent(next) : "");
  }

  async function api(path, opts = {}) {
    const headers = Object.assign({}, opts.headers || {});
    const tok = token();
    if (tok) headers.Authorization = "Bearer " + tok;
    const init = Object.assign({}, opts, { headers });
    if (opts.body !== undefined && typeof opts.body !== "string") {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    const r = await fetch("/api/v1" + path, init);
    if (r.status === 401 && page !== "login") {
      toLogin();
      throw new Error(tr("登录已过期", "session expired"));
    }
    if (!r.ok) {
      let detail = r.statusText;
      try {
        const body = await r.json();
        detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      } catch (e) { /* not JSON */ }
      throw new Error(r.status + " " + detail);
    }
    if (r.status === 204) return null;
    const ct = r.headers.get("content-type") || "";
    return ct.includes("json") ? r.json() : r.blob();
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      e.append(c instanceof Node ? c : document.createTextNode(c === null || c === undefined ? "" : String(c)));
    }
    return e;
  }

  function showError(err) {
    const p = document.getElementById("error");
    p.textContent = (err && err.message) || String(err);
    p.hidden = false;
  }

  function clearError() {
    document.getElementById("error").hidden = true;
  }

  function say(text) {
    const s = document.getElementById("status");
    if (s) s.textContent = text;
  }

  // A time in the site's zone, labelled with it (e.g. "2026-12-04 09:30 Asia/Shanghai").
  function fmtTime(iso, tz) {
    if (!iso) return "–";
    const zone = tz || Intl.DateTimeFormat().resolvedOptions().timeZone;
    const text = new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB",
      { hour12: false, timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
        minute: "2-digit" });
    return text + " " + zone;
  }

  function fmtNum(x, digits) {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    return Number(x).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB",
      { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  function fill(tbody, rows, emptyText, ncols) {
    tbody.replaceChildren(...(rows.length ? rows
      : [el("tr", { class: "empty" }, el("td", { colspan: String(ncols) }, emptyText))]));
  }

  function words(table, key) {
    const w = glossary && glossary[table] && glossary[table][key];
    return w ? tr(w[0], w[1]) : String(key);
  }

  const sevBadge = (sev) => el("span", { class: "sev sev-" + sev, "data-sev": sev }, words("severities", sev));
  const siteName = (id) => (names.sites.get(id) || {}).name || id;
  const siteZone = (id) => (names.sites.get(id) || {}).timezone;
  const deviceName = (id) => (id ? (names.devices.get(id) || {}).name || id : "–");
  const userName = (id) => (id ? (names.users.get(id) || {}).name || id : tr("未指派", "unassigned"));
  // a name with its id on hover
  const named = (text, id) => el("span", { title: id || "" }, text);

  // A value of a channel in words or with its unit, from the channel glossary.
  function channelValue(ch, v) {
    if (v === null || v === undefined) return "–";
    const states = glossary.states[ch];
    if (states) return states[String(Math.round(v))] ? tr(...states[String(Math.round(v))]) : String(v);
    const g = glossary.channels[ch] || { unit: "", scale: 1 };
    const x = v * g.scale;
    const digits = Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2;
    return fmtNum(x, digits) + (g.unit ? " " + g.unit : "");
  }
  const channelLabel = (ch) => (glossary.channels[ch] ? tr(glossary.channels[ch].zh, glossary.channels[ch].en) : ch);

  // Fetch a file with the bearer token and save it.
  async function download(path, name) {
    try {
      const blob = await api(path);
      const url = URL.createObjectURL(blob);
      const a = el("a", { href: url, download: name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (err) { showError(err); }
  }

  // CSV / Excel buttons for an export route (api/routes/export.py)
  function exportButtons(path, stem) {
    const sep = path.includes("?") ? "&" : "?";
    return el("span", { class: "export" }, ["csv", "xlsx"].map((f) => el("button", {
      type: "button", class: "export-" + f,
      onclick: () => download(`/export${path}${sep}format=${f}`, `${stem}.${f}`),
    }, f === "csv" ? "CSV" : "Excel")));
  }

  // A time axis labelled in the site's zone (ECharts would use the browser's).
  function timeAxis(tz) {
    const fmt = (v) => new Date(v).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB",
      { timeZone: tz, hour12: false, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
    return { type: "time", name: tz, nameLocation: "end", nameGap: 5, nameTextStyle: { fontSize: 10, padding: [28, 0, 0, 0] },
      axisLabel: { hideOverlap: true, formatter: (v) => fmt(v).replace(/^.*?(\d\d:\d\d)$/, "$1") },
      axisPointer: { label: { formatter: (p) => fmt(p.value) } } };
  }

  // An ECharts chart in a box (the vendored library is loaded by the page).
  function chart(box, option) {
    if (typeof echarts === "undefined") {
      box.replaceChildren(el("p", { class: "muted" }, tr("图表库未加载", "chart library not loaded")));
      return null;
    }
    const c = echarts.getInstanceByDom(box) || echarts.init(box, null, { renderer: "canvas" });
    c.setOption(option, true);
    box.dataset.chart = "1";
    return c;
  }
  window.addEventListener("resize", () => {
    if (typeof echarts === "undefined") return;
    document.querySelectorAll("[data-chart]").forEach((b) => { const c = echarts.getInstanceByDom(b); if (c) c.resize(); });
  });

  function nav(role) {
    const box = document.getElementById("nav");
    if (!box || (PAGES[role] || []).length < 2) return;
    box.replaceChildren(...(PAGES[role] || []).map((p) => el("a", {
      href: `/web/${p}?lang=${lang}`, class: p === page ? "current" : "",
    }, tr(...PAGE_NAMES[p]))));
  }

  async function loadNames(me) {
    const [sites, devices] = await Promise.all([api("/sites"), api("/devices")]);
    sites.forEach((s) => names.sites.set(s.id, s));
    devices.forEach((d) => names.devices.set(d.id, d));
    if (me.role === "admin" || me.role === "engineer" || me.role === "customer_manager") {
      try { (await api("/dashboard/engineers")).forEach((u) => names.users.set(u.id, u)); } catch (e) { /* not staff */ }
    }
    return { sites, devices };
  }

  // Resolves with the signed-in user (pages other than login); redirects to login without a token,
  // and to the role's home page when the role may not use this page.
  async function init() {
    takeFragmentToken();
    if (page === "login") return null;
    if (!token()) {
      toLogin();
      return new Promise(() => {});
    }
    const me = await api("/auth/me");
    const allowed = PAGES[me.role] || [];
    if (!allowed.includes(page)) {
      location.replace(`/web/${allowed[0] || "login"}?lang=${lang}`);
      return new Promise(() => {});
    }
    glossary = await api("/dashboard/glossary");
    document.body.dataset.role = me.role;
    nav(me.role);
    const roleWord = { admin: ["管理员", "admin"], engineer: ["工程师", "engineer"],
      customer_manager: ["客户经理", "customer manager"], customer: ["客户", "customer"] }[me.role] || [me.role, me.role];
    document.getElementById("who").textContent = `${me.name || me.id} (${tr(...roleWord)})`;
    const out = document.getElementById("logout");
    out.hidden = false;
    out.addEventListener("click", async () => {
      try { await api("/auth/logout", { method: "POST" }); } catch (e) { /* already gone */ }
      sessionStorage.removeItem("eh_token");
      toLogin();
    });
    me.registry = await loadNames(me);
    return me;
  }

  return {
    lang, tr, api, el, showError, clearError, say, fmtTime, fmtNum, fill, init, token, words, sevBadge, siteName,
    siteZone, deviceName, userName, named, channelValue, channelLabel, download, exportButtons, chart, timeAxis, names,
    glossary: () => glossary, homeOf: (role) => (PAGES[role] || ["login"])[0],
  };
})();
