// energyhost web pages: shared helpers (token, API calls, DOM building without innerHTML).
"use strict";

const EH = (() => {
  const lang = document.body.dataset.lang === "en" ? "en" : "zh";
  const page = document.body.dataset.page;
  const tr = (zh, en) => (lang === "zh" ? zh : en);

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

  function fmtTime(iso) {
    if (!iso) return "–";
    return new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { hour12: false });
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

  // Resolves with the signed-in user (pages other than login); redirects to login without a token.
  async function init() {
    takeFragmentToken();
    if (page === "login") return null;
    if (!token()) {
      toLogin();
      return new Promise(() => {});
    }
    const me = await api("/auth/me");
    document.getElementById("who").textContent = me.name ? `${me.name} (${me.role})` : `${me.id} (${me.role})`;
    const out = document.getElementById("logout");
    out.hidden = false;
    out.addEventListener("click", async () => {
      try { await api("/auth/logout", { method: "POST" }); } catch (e) { /* already gone */ }
      sessionStorage.removeItem("eh_token");
      toLogin();
    });
    return me;
  }

  return { lang, tr, api, el, showError, clearError, fmtTime, fmtNum, fill, init, token };
})();
