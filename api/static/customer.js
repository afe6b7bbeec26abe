// Customer dashboard: today's and this month's energy and cost (with the tariff evidence), PV,
// maximum demand, power and daily-energy charts, devices in words, alarms and service orders in
// customer language, reports and surveys.
"use strict";

const { el, tr, api } = EH;
// channels shown per device kind, in this order
const SHOWN = {
  meter: ["active_power", "voltage_l1", "current_l1", "power_factor", "energy_import"],
  transformer: ["winding_temperature_l1", "winding_temperature_l2", "winding_temperature_l3", "fan_running"],
  pv_inverter: ["active_power", "energy_export", "inverter_state", "temperature_heatsink"],
  ev_charger: ["ocpp_status", "active_power", "session_energy", "charger_state"],
};
const yuan = (x) => "¥" + EH.fmtNum(x, 2);
const kwh = (x) => EH.fmtNum(x, x >= 100 ? 0 : 1) + " kWh";
const PERIODS = { critical: ["尖峰", "critical peak"], sharp: ["尖峰", "critical peak"], peak: ["峰", "peak"], flat: ["平", "flat"], valley: ["谷", "valley"],
  deep_valley: ["深谷", "deep valley"] };

// kWh × price = 元 per time-of-use period: the evidence of a cost figure
function evidence(m) {
  return el("table", { class: "evidence" }, el("tbody", {}, m.periods.filter((p) => p.kwh > 0).map((p) =>
    el("tr", {}, el("td", {}, PERIODS[p.period] ? tr(...PERIODS[p.period]) : p.period),
      el("td", {}, `${EH.fmtNum(p.kwh, 2)} kWh × ${EH.fmtNum(p.price_yuan_per_kwh, 4)} = ${yuan(p.yuan)}`)))));
}

function tile(id, title, big, ...rest) {
  return el("div", { class: "tile", id }, el("h3", {}, title), el("div", { class: "big" }, big), ...rest);
}

function renderTiles(d) {
  const tiles = [
    tile("today", tr("今日用电", "Today"), `${kwh(d.today.kwh)} · ${yuan(d.today.yuan)}`, evidence(d.today)),
    tile("month", tr("本月用电", "This month"), `${kwh(d.month.kwh)} · ${yuan(d.month.yuan)}`, evidence(d.month)),
  ];
  if (d.pv) {
    const sc = (x) => (x === null ? "–" : EH.fmtNum(100 * x, 0) + " %");
    tiles.push(tile("pv", tr("光伏发电", "PV yield"), `${kwh(d.pv.today.yield_kwh)} / ${kwh(d.pv.month.yield_kwh)}`,
      el("div", { class: "kv" }, el("span", {}, tr("今日/本月自用率", "self-consumed today / month")),
        el("span", {}, `${sc(d.pv.today.self_consumption)} / ${sc(d.pv.month.self_consumption)}`),
        el("span", {}, tr("本月上网", "exported this month")), el("span", {}, kwh(d.pv.month.export_kwh)))));
  }
  const dm = d.demand;
  const over = dm.ratio !== null && dm.ratio > 1;
  tiles.push(el("div", { class: "tile " + (over ? "bad" : dm.ratio > 0.9 ? "warn" : ""), id: "demand" },
    el("h3", {}, tr("本月最大需量", "Max demand this month")),
    el("div", { class: "big" }, dm.max_kw === null ? "–" : EH.fmtNum(dm.max_kw, 0) + " kW"),
    el("div", { class: "kv" }, el("span", {}, tr("合同需量", "contract")),
      el("span", {}, dm.contract_kw ? EH.fmtNum(dm.contract_kw, 0) + " kW" : "–"),
      el("span", {}, tr("占合同", "of contract")), el("span", {}, dm.ratio === null ? "–" : EH.fmtNum(100 * dm.ratio, 0) + " %"),
      el("span", {}, tr("出现于", "at")), el("span", {}, EH.fmtTime(dm.at, d.timezone)))));
  document.getElementById("tiles").replaceChildren(...tiles);
  const note = d.tariff.prices_are_example && !/example/i.test(d.tariff.name) ? tr("(示例电价)", " (example prices)") : "";
  document.getElementById("asof").textContent = tr("电价 ", "tariff ") + d.tariff.name + note + " · " +
    tr("截至 ", "as of ") + EH.fmtTime(d.now, d.timezone);
}

async function renderPowerChart(siteId, devices) {
  const meters = devices.filter((x) => x.site_id === siteId && x.kind === "meter");
  const pvs = devices.filter((x) => x.site_id === siteId && x.kind === "pv_inverter");
  const series = [];
  for (const [list, name] of [[meters.slice(0, 1), tr("电网取电", "grid")], [pvs, tr("光伏", "PV")]]) {
    for (const dev of list) {
      const s = await api(`/telemetry/${encodeURIComponent(dev.id)}/series?channels=active_power`);
      series.push({ name: list.length > 1 ? `${name} ${dev.name || dev.id}` : name, type: "line", showSymbol: false,
        areaStyle: { opacity: 0.15 }, data: s.times.map((t, i) => [t, s.values.active_power[i] === null ? null : s.values.active_power[i] / 1000]) });
    }
  }
  const box = document.getElementById("power-chart");
  EH.chart(box, { animation: false, tooltip: { trigger: "axis" }, legend: { top: 0 },
    grid: { left: 50, right: 15, top: 30, bottom: 40 }, xAxis: EH.timeAxis(EH.siteZone(siteId)),
    yAxis: { type: "value", name: "kW" }, series });
  box.dataset.series = String(series.length);
}

function renderDailyChart(d) {
  const box = document.getElementById("daily-chart");
  EH.chart(box, { animation: false, tooltip: { trigger: "axis" }, grid: { left: 60, right: 50, top: 30, bottom: 30 },
    legend: { top: 0 }, xAxis: { type: "category", data: d.month.days.map((x) => x.date.slice(5)) },
    yAxis: [{ type: "value", name: "kWh" }, { type: "value", name: "¥", splitLine: { show: false } }],
    series: [{ name: tr("电量", "energy"), type: "bar", data: d.month.days.map((x) => x.kwh), itemStyle: { color: "#12436b" } },
      { name: tr("电费", "cost"), type: "line", yAxisIndex: 1, data: d.month.days.map((x) => x.yuan) }] });
  box.dataset.days = String(d.month.days.length);
}

async function renderDevices(siteId, devices) {
  const mine = devices.filter((x) => x.site_id === siteId);
  const latest = await Promise.all(mine.map((dev) => api(`/telemetry/${encodeURIComponent(dev.id)}/latest`)
    .catch(() => ({ time: null, values: {} }))));
  const site = EH.names.sites.get(siteId);
  const cards = mine.map((dev, i) => {
    const L = latest[i];
    const rows = (SHOWN[dev.kind] || []).filter((ch) => L.values[ch] !== null && L.values[ch] !== undefined)
      .map((ch) => [el("span", { title: ch }, EH.channelLabel(ch)), el("span", { class: "v" }, EH.channelValue(ch, L.values[ch]))]);
    return el("div", { class: "tile device", "data-device-id": dev.id },
      el("h3", { title: dev.id }, dev.name || dev.id), el("div", { class: "muted" }, EH.words("kinds", dev.kind)),
      L.time ? el("div", { class: "kv" }, rows.flat()) : el("p", { class: "muted" }, tr("暂无数据", "no data")),
      el("div", { class: "muted" }, EH.fmtTime(L.time, site && site.timezone)));
  });
  const box = document.getElementById("sites");
  box.dataset.siteId = siteId;
  box.replaceChildren(...(cards.length ? cards : [el("p", { class: "muted" }, tr("无设备", "No device"))]));
}

// insulation life each transformer used this month: days consumed beside days covered and the mean rate
async function renderAgeing(siteId) {
  const d = await api(`/sites/${encodeURIComponent(siteId)}/transformer-ageing`).catch(() => ({ transformers: [] }));
  EH.fill(document.querySelector("#ageing tbody"), d.transformers.map((a) => el("tr", { "data-transformer": a.transformer },
    el("td", { "data-label": tr("变压器", "Transformer") }, a.transformer),
    el("td", { "data-label": tr("消耗寿命（天）", "Life consumed (days)") }, EH.fmtNum(a.days_consumed, 2)),
    el("td", { "data-label": tr("有效天数", "Days covered") }, EH.fmtNum(a.covered_days, 2)),
    el("td", { "data-label": tr("平均老化速率", "Mean ageing rate") }, a.mean_rate === null ? "–" : EH.fmtNum(a.mean_rate, 2)),
    el("td", { "data-label": tr("最高热点", "Peak hot spot") }, a.peak_hot_spot_c === null ? "–" : `${EH.fmtNum(a.peak_hot_spot_c, 1)} °C`),
    el("td", { "data-label": tr("占设计寿命", "Share of design life") }, `${EH.fmtNum(a.share_of_life_pct, 3)} %`))),
  tr("暂无变压器温度或负载数据", "No transformer temperature or load data"), 6);
}

// customer language: is it still going on, has someone been sent
function alarmStatus(a) {
  if (a.state === "cleared") return tr("已恢复", "resolved");
  if (a.cleared_at) return tr("已恢复,待确认", "back to normal");
  return a.acked ? tr("工程师已知悉,处理中", "our engineers are on it") : tr("新发生", "new");
}

async function renderAlarmsAndOrders(siteId) {
  const [alarms, orders] = await Promise.all([api(`/alarms?site_id=${siteId}&limit=50`), api(`/workorders?site_id=${siteId}&limit=100`)]);
  const tz = EH.siteZone(siteId);
  EH.fill(document.querySelector("#alarms tbody"), alarms.map((a) => el("tr", { "data-alarm-id": String(a.id) },
    el("td", { "data-label": tr("级别", "Severity") }, EH.sevBadge(a.severity)),
    el("td", { "data-label": tr("情况", "What") }, (EH.lang === "zh" ? a.message_zh : a.message_en) || a.type),
    el("td", { "data-label": tr("设备", "Device") }, EH.named(EH.deviceName(a.device_id), a.device_id)),
    el("td", { "data-label": tr("时间", "Time") }, EH.fmtTime(a.raised_at, tz)),
    el("td", { "data-label": tr("状态", "Status") }, alarmStatus(a)))), tr("没有告警", "No alarm"), 5);
  document.getElementById("alarm-count").textContent = String(alarms.filter((a) => a.state !== "cleared").length);
  EH.fill(document.querySelector("#orders tbody"), orders.map((w) => el("tr", { "data-wo-id": String(w.id) },
    el("td", { "data-label": "#" }, String(w.id)), el("td", { "data-label": tr("内容", "Subject") }, w.title),
    el("td", { "data-label": tr("进度", "Progress") }, EH.words("wo_states", w.state)),
    el("td", { "data-label": tr("开单", "Opened") }, EH.fmtTime(w.created_at, tz)),
    el("td", { "data-label": tr("按时", "On time") }, w.in_time === null ? (w.overdue ? tr("已超时", "late") : tr("进行中", "in progress"))
      : w.in_time ? tr("按时完成", "on time") : tr("超时完成", "late")),
    el("td", {}, w.state === "closed" ? el("button", { type: "button", class: "rate", onclick: () => pickSurvey(`wo-${w.id}`) },
      tr("评价", "Rate")) : ""))), tr("没有工单", "No service order"), 6);
  return orders.filter((w) => w.state === "closed");
}

// the service commitments of the contract: this and last month's verdicts in words, the records behind a miss
function commitmentRows(card) {
  const unit = (c) => (EH.lang === "zh" ? c.unit_zh : c.unit_en);
  return card.commitments.map((c) => {
    const misses = c.cases.filter((x) => x.ok === false);
    const why = misses.length ? misses.map((x) => `${EH.lang === "zh" ? x.ref_zh : x.ref}: ${EH.fmtNum(x.measured, 1)} ${unit(c)}`).join("; ")
      : c.cases.length ? tr(`${c.cases.length} 项均达标`, `${c.cases.length} within target`) : "–";
    return el("tr", { "data-commitment": c.id, "data-status": c.status },
      el("td", { "data-label": tr("承诺", "Commitment") }, EH.lang === "zh" ? c.zh : c.en),
      el("td", { "data-label": tr("考核指标", "Measured by") }, EH.lang === "zh" ? c.target_zh : c.target_en),
      el("td", { "data-label": tr("结果", "Result"), class: "commit-" + c.status }, EH.lang === "zh" ? c.status_zh : c.status_en),
      el("td", { "data-label": tr("依据", "Records"), class: "cases" }, why));
  });
}

function previousMonth(m) {
  const [y, mo] = m.split("-").map(Number);
  return mo === 1 ? `${y - 1}-12` : `${y}-${String(mo - 1).padStart(2, "0")}`;
}

async function loadCommitments(customerId) {
  const box = document.getElementById("commitments");
  let now;
  try { now = await api(`/commitments/${encodeURIComponent(customerId)}`); } catch (err) {
    if (String(err.message).startsWith("404")) return;          // no service contract on file
    throw err;
  }
  const last = await api(`/commitments/${encodeURIComponent(customerId)}?month=${previousMonth(now.month)}`);
  document.getElementById("contract-id").textContent = tr(`合同 ${now.contract}`, `contract ${now.contract}`);
  document.getElementById("letter").replaceChildren(...["zh", "en"].map((l) => el("button", { type: "button", class: "letter",
    onclick: () => EH.download(`/commitments/${customerId}/letter?lang=${l}`, `commitments-${customerId}-${l}.pdf`) },
  l === "zh" ? "承诺书 PDF" : "Letter (English) PDF")));
  const heads = box.querySelectorAll("h3");
  [[now, "this", heads[0]], [last, "last", heads[1]]].forEach(([card, which, h]) => {
    h.querySelector(".month").textContent = card.month;
    h.querySelector(".missed-count").textContent = card.missed ? tr(`${card.missed} 项未兑现`, `${card.missed} missed`) : "";
    EH.fill(document.querySelector(`#commit-${which} tbody`), commitmentRows(card), "–", 4);
  });
  box.hidden = false;
}

function pickSurvey(value) {
  const sel = document.getElementById("survey-month");
  sel.value = value;
  document.getElementById("survey-card").scrollIntoView();
}

async function loadReports(closed) {
  const reports = await api("/reports");
  const rows = reports.map((r) => el("tr", { "data-month": r.month },
    el("td", { "data-label": tr("月份", "Month") }, r.month), el("td", { "data-label": tr("生成", "Generated") }, EH.fmtTime(r.generated_at)),
    el("td", {}, r.langs.map((l) => el("button", {
      type: "button", class: "pdf",
      onclick: () => EH.download(`/reports/${r.customer_id}/${r.month}/pdf?lang=${l}`, `energyhost-${r.customer_id}-${r.month}-${l}.pdf`),
    }, l === "zh" ? "中文 PDF" : "English PDF"))),
    el("td", {}, r.langs.map((l) => el("button", {
      type: "button", class: "html",
      // a download, not a blob tab: a blob document would inherit this page's CSP and lose the report's styles
      onclick: () => EH.download(`/reports/${r.customer_id}/${r.month}/html?lang=${l}`, `energyhost-${r.customer_id}-${r.month}-${l}.html`),
    }, l === "zh" ? "中文" : "English")))));
  EH.fill(document.querySelector("#reports tbody"), rows, tr("暂无报告", "No report yet"), 4);
  const sel = document.getElementById("survey-month");
  const months = [...new Set(reports.map((r) => r.month))];
  sel.replaceChildren(...months.map((m) => el("option", { value: m }, tr(`${m} 月度报告`, `${m} monthly report`))),
    ...closed.map((w) => el("option", { value: `wo-${w.id}` }, tr(`工单 #${w.id} ${w.title}`, `order #${w.id} ${w.title}`))));
  const wanted = new URLSearchParams(location.search).get("survey");
  if (wanted && months.includes(wanted)) pickSurvey(wanted);
}

function setupSurvey() {
  document.getElementById("survey").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const ref = String(f.get("ref"));
    const out = document.getElementById("survey-result");
    try {
      await api("/surveys", { method: "POST", body: {
        kind: ref.startsWith("wo-") ? "work_order" : "monthly_report", ref: ref.replace(/^wo-/, ""),
        rating: Number(f.get("rating")), comment: f.get("comment") || "" } });
      out.textContent = tr("感谢您的评价!", "Thank you for your rating!");
      EH.clearError();
    } catch (err) { EH.showError(err); }
  });
}

let me = null;
let commitmentsShown = false;

async function showSite(siteId, devices) {
  document.body.dataset.loaded = "0";
  try {
    const d = await api(`/dashboard/sites/${encodeURIComponent(siteId)}`);
    renderTiles(d);
    renderDailyChart(d);
    const [closed] = await Promise.all([renderAlarmsAndOrders(siteId), renderDevices(siteId, devices),
      renderPowerChart(siteId, devices), renderAgeing(siteId)]);
    await loadReports(closed);
    if (!commitmentsShown) { commitmentsShown = true; await loadCommitments(me.customer_id); }
    document.body.dataset.loaded = "1";
  } catch (err) { EH.showError(err); }
}

EH.init().then(async (user) => {
  me = user;
  setupSurvey();
  const { sites, devices } = me.registry;
  const sel = document.getElementById("site");
  sel.replaceChildren(...sites.map((s) => el("option", { value: s.id }, s.name)));
  sel.addEventListener("change", () => showSite(sel.value, devices));
  document.getElementById("wo-export").append(EH.exportButtons("/workorders", "workorders"));
  if (sites.length) await showSite(sites[0].id, devices);
  else document.body.dataset.loaded = "1";
}).catch(EH.showError);
