// Customer page: sites with the latest values of each device, monthly reports, satisfaction survey.
"use strict";

const { el, tr, api } = EH;
const SHOWN = [
  ["active_power", "kW", 1e-3, 1], ["voltage_l1", "V", 1, 1], ["current_l1", "A", 1, 1],
  ["power_factor", "", 1, 2], ["energy_import", "kWh", 1e-3, 0], ["energy_export", "kWh", 1e-3, 0],
  ["winding_temperature_l1", "°C", 1, 1], ["ocpp_status", "", 1, 0],
];
const KIND = {
  meter: ["电表", "meter"], transformer: ["变压器", "transformer"], pv_inverter: ["光伏逆变器", "PV inverter"],
  ev_charger: ["充电桩", "EV charger"],
};

function valuesText(latest) {
  if (!latest.time) return tr("暂无数据", "no data");
  const parts = [];
  for (const [ch, unit, scale, digits] of SHOWN) {
    const v = latest.values[ch];
    if (v !== null && v !== undefined) parts.push(`${ch} ${EH.fmtNum(v * scale, digits)}${unit ? " " + unit : ""}`);
  }
  return parts.join(" · ");
}

async function loadSites() {
  const [sites, devices] = await Promise.all([api("/sites"), api("/devices")]);
  const box = document.getElementById("sites");
  const cards = [];
  // latest values of every device, fetched concurrently
  const latestOf = new Map(await Promise.all(devices.map(async (d) => {
    try {
      return [d.id, await api(`/telemetry/${encodeURIComponent(d.id)}/latest`)];
    } catch (err) {
      EH.showError(err);
      return [d.id, { time: null, values: {} }];
    }
  })));
  for (const s of sites) {
    const rows = [];
    for (const d of devices.filter((x) => x.site_id === s.id)) {
      const latest = latestOf.get(d.id);
      rows.push(el("tr", { "data-device-id": d.id },
        el("td", {}, d.name || d.id), el("td", {}, tr(...(KIND[d.kind] || [d.kind, d.kind]))),
        el("td", {}, EH.fmtTime(latest.time)), el("td", { class: "values" }, valuesText(latest))));
    }
    cards.push(el("div", { class: "site", "data-site-id": s.id },
      el("h3", {}, `${s.name} (${s.id})`),
      el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, tr("设备", "Device")), el("th", {}, tr("类型", "Kind")),
        el("th", {}, tr("时间", "Time")), el("th", {}, tr("最新数据", "Latest values")))), el("tbody", {}, rows))));
  }
  box.replaceChildren(...(cards.length ? cards : [el("p", { class: "muted" }, tr("无站点", "No site"))]));
}

async function download(path, name) {
  try {
    const blob = await api(path);
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (err) { EH.showError(err); }
}

async function loadReports() {
  const reports = await api("/reports");
  const rows = reports.map((r) => el("tr", { "data-month": r.month },
    el("td", {}, r.month), el("td", {}, EH.fmtTime(r.generated_at)),
    el("td", {}, r.langs.map((l) => el("button", {
      type: "button", class: "pdf",
      onclick: () => download(`/reports/${r.customer_id}/${r.month}/pdf?lang=${l}`,
        `energyhost-${r.customer_id}-${r.month}-${l}.pdf`),
    }, l === "zh" ? "中文 PDF" : "English PDF"))),
    el("td", {}, r.langs.map((l) => el("button", {
      type: "button", class: "html",
      // a download, not a blob tab: a blob document would inherit this page's CSP and lose the report's styles
      onclick: () => download(`/reports/${r.customer_id}/${r.month}/html?lang=${l}`,
        `energyhost-${r.customer_id}-${r.month}-${l}.html`),
    }, l === "zh" ? "中文" : "English")))));
  EH.fill(document.querySelector("#reports tbody"), rows, tr("暂无报告", "No report yet"), 4);
  const sel = document.getElementById("survey-month");
  const months = [...new Set(reports.map((r) => r.month))];
  sel.replaceChildren(...months.map((m) => el("option", { value: m }, m)));
  const wanted = new URLSearchParams(location.search).get("survey");
  if (wanted && months.includes(wanted)) {
    sel.value = wanted;
    document.getElementById("survey-card").scrollIntoView();
  }
}

function setupSurvey() {
  document.getElementById("survey").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const out = document.getElementById("survey-result");
    try {
      await api("/surveys", {
        method: "POST",
        body: { kind: "monthly_report", ref: f.get("ref"), rating: Number(f.get("rating")), comment: f.get("comment") || "" },
      });
      out.textContent = tr("感谢您的评价!", "Thank you for your rating!");
      EH.clearError();
    } catch (err) { EH.showError(err); }
  });
}

EH.init().then(async () => {
  setupSurvey();
  try {
    await Promise.all([loadSites(), loadReports()]);
    document.body.dataset.loaded = "1";
  } catch (err) { EH.showError(err); }
}).catch(EH.showError);
