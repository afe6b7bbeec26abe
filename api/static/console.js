// Engineers' console: active alarms (ack, shelve, detail with trend chart, open a work order), the
// whole work-order life cycle, escalations addressed to me, inspections; new critical alarms announced.
"use strict";

const { el, tr, api } = EH;
const OPEN_STATES = ["active-unacked", "active-acked", "rtn-unacked", "shelved"];
const SEV_ORDER = { critical: 0, major: 1, minor: 2, warning: 3 };
const NEXT = { new: "dispatched", dispatched: "on_site", on_site: "resolved", resolved: "closed" };
const NEXT_WORDS = {
  dispatched: ["派工", "Dispatch"], on_site: ["到场", "On site"], resolved: ["处理完成", "Resolve"], closed: ["关闭", "Close"],
};
// channels to plot around an alarm, by alarm type (first match of the type's start)
const TREND = [
  ["overvoltage", ["voltage_l1", "voltage_l2", "voltage_l3"]], ["undervoltage", ["voltage_l1", "voltage_l2", "voltage_l3"]],
  ["voltage", ["voltage_l1", "voltage_l2", "voltage_l3"]], ["power_factor", ["power_factor"]],
  ["thd_voltage", ["thd_voltage_l1", "thd_voltage_l2", "thd_voltage_l3"]],
  ["thd_current", ["thd_current_l1", "thd_current_l2", "thd_current_l3"]],
  ["transformer", ["winding_temperature_l1", "winding_temperature_l2", "winding_temperature_l3"]],
  ["unbalance", ["current_l1", "current_l2", "current_l3"]], ["neutral", ["current_n"]],
  ["overload", ["active_power"]],
];
let me = null;
let seenCritical = null;              // ids of critical alarms already announced (null before the first load)
let openOrderOf = new Map();           // alarm id -> open work order

// ------------------------------------------------------------------ announcements
const muted = () => localStorage.getItem("eh_mute") === "1";

function beep() {
  if (muted()) return;
  try {
    const ctx = new (window.AudioContext || window.webkitAudioContext)();
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "square";
    osc.frequency.value = 880;
    gain.gain.value = 0.08;
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.4);
    document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
  } catch (e) { /* no audio device */ }
}

function announce(active) {
  const critical = active.filter((a) => a.severity === "critical" && a.state === "active-unacked");
  const fresh = seenCritical === null ? [] : critical.filter((a) => !seenCritical.has(a.id));
  seenCritical = new Set(critical.map((a) => a.id));
  document.title = (critical.length ? `(${critical.length}) ` : "") + tr("告警监控台", "Alarm console") + " · energyhost";
  if (!fresh.length) return;
  document.body.dataset.announced = String(Number(document.body.dataset.announced || 0) + fresh.length);
  beep();
  if (window.Notification && Notification.permission === "granted") {
    for (const a of fresh.slice(0, 3)) {
      new Notification(tr("紧急告警", "Critical alarm"), { body: `${EH.siteName(a.site_id)}: ${message(a)}` });
    }
  }
}

function setupAnnouncer() {
  const mute = document.getElementById("mute");
  const label = () => { mute.textContent = muted() ? tr("声音:关", "Sound: off") : tr("声音:开", "Sound: on"); };
  label();
  mute.addEventListener("click", () => { localStorage.setItem("eh_mute", muted() ? "0" : "1"); label(); });
  const notify = document.getElementById("notify");
  notify.hidden = !window.Notification || Notification.permission !== "default";
  notify.addEventListener("click", async () => { await Notification.requestPermission(); notify.hidden = true; });
}

// ------------------------------------------------------------------ alarms
const message = (a) => (EH.lang === "zh" ? a.message_zh : a.message_en) || a.type;

async function act(fn, done) {
  try {
    EH.clearError();
    await fn();
    if (done) EH.say(done);
    await load();
  } catch (err) { EH.showError(err); }
}

function alarmActions(a, note) {
  const out = [note];
  if (!a.acked) {
    out.push(el("button", { type: "button", class: "ack", onclick: () => act(
      () => api(`/alarms/${a.id}/ack`, { method: "POST", body: { note: note.value } }),
      tr("已确认告警", "Alarm acknowledged")) }, tr("确认", "Ack")));
  }
  if (a.state === "shelved") {
    out.push(el("button", { type: "button", class: "unshelve", onclick: () => act(
      () => api(`/alarms/${a.id}/unshelve`, { method: "POST" }), tr("已取消搁置", "Alarm unshelved")) },
    tr("取消搁置", "Unshelve")));
  } else {
    const mins = el("select", { class: "shelve-min", "aria-label": tr("搁置时长", "shelve for") },
      [30, 60, 120, 240, 480].map((m) => el("option", { value: String(m) },
        m < 60 ? tr(`${m} 分钟`, `${m} min`) : tr(`${m / 60} 小时`, `${m / 60} h`))));
    out.push(mins, el("button", { type: "button", class: "shelve", onclick: () => {
      if (!note.value.trim()) { EH.showError(new Error(tr("搁置需要填写原因(备注)", "Shelving needs a reason (note)"))); return; }
      act(() => api(`/alarms/${a.id}/shelve`, { method: "POST", body: { minutes: Number(mins.value), reason: note.value } }),
        tr("已搁置告警", "Alarm shelved"));
    } }, tr("搁置", "Shelve")));
  }
  if (!openOrderOf.has(a.id)) {
    out.push(el("button", { type: "button", class: "wo", onclick: () => act(async () => {
      const w = await api("/workorders", { method: "POST", body: {
        site_id: a.site_id, device_id: a.device_id, alarm_id: a.id, severity: a.severity, title: message(a),
        description: note.value } });
      EH.say(tr(`已创建工单 #${w.id}`, `Work order #${w.id} opened`));
    }) }, tr("派工单", "Open work order")));
  } else {
    out.push(el("span", { class: "muted" }, tr(`工单 #${openOrderOf.get(a.id).id}`, `order #${openOrderOf.get(a.id).id}`)));
  }
  out.push(el("button", { type: "button", class: "detail", onclick: () => showDetail(a) }, tr("详情", "Details")));
  return out;
}

function alarmRow(a) {
  const note = el("input", { class: "note", placeholder: tr("备注/原因", "note / reason"), maxlength: "500" });
  const tz = EH.siteZone(a.site_id);
  return el("tr", { "data-alarm-id": String(a.id), class: a.acked ? "acked" : "unacked" },
    el("td", { "data-label": tr("级别", "Severity") }, EH.sevBadge(a.severity)),
    el("td", { "data-label": tr("状态", "State"), class: "state" }, EH.words("alarm_states", a.state),
      a.state === "shelved" ? el("small", {}, " → " + EH.fmtTime(a.shelved_until, tz)) : ""),
    el("td", { "data-label": tr("站点", "Site") }, EH.named(EH.siteName(a.site_id), a.site_id)),
    el("td", { "data-label": tr("设备", "Device") }, EH.named(EH.deviceName(a.device_id), a.device_id)),
    el("td", { "data-label": tr("告警", "Alarm") }, message(a)),
    el("td", { "data-label": tr("发生时间", "Raised") }, EH.fmtTime(a.raised_at, tz)),
    el("td", { class: "actions" }, alarmActions(a, note)));
}

// Measured value against its limit, from the alarm's evidence.
function measuredVsLimit(ev) {
  const num = (v) => (v && typeof v === "object" ? (v.max !== undefined ? v.max : v.mean) : v);
  const out = [];
  if (ev.nominal_v !== undefined && ev.band_pct !== undefined) {
    const hi = ev.nominal_v * (1 + ev.band_pct / 100);
    const lo = ev.nominal_v * (1 - ev.band_pct / 100);
    out.push(tr(`测量 ${EH.fmtNum(ev.min_v, 1)}–${EH.fmtNum(ev.max_v, 1)} V,限值 ${EH.fmtNum(lo, 1)}–${EH.fmtNum(hi, 1)} V`,
      `measured ${EH.fmtNum(ev.min_v, 1)}–${EH.fmtNum(ev.max_v, 1)} V against the limits ${EH.fmtNum(lo, 1)}–${EH.fmtNum(hi, 1)} V`));
  }
  for (const lk of Object.keys(ev).filter((k) => /^limit/.test(k))) {
    const mk = Object.keys(ev).find((k) => !/^limit/.test(k) && typeof num(ev[k]) === "number");
    if (mk) out.push(tr(`${mk} 测量 ${EH.fmtNum(num(ev[mk]), 2)},限值 ${EH.fmtNum(ev[lk], 2)}`,
      `${mk} measured ${EH.fmtNum(num(ev[mk]), 2)} against the limit ${EH.fmtNum(ev[lk], 2)}`));
  }
  return out;
}

async function showDetail(a) {
  const box = document.getElementById("detail");
  box.hidden = false;
  const tz = EH.siteZone(a.site_id);
  const ev = a.evidence || {};
  const facts = measuredVsLimit(ev);
  box.replaceChildren(
    el("h2", {}, tr("告警详情", "Alarm detail"), " #", String(a.id), " ",
      el("button", { type: "button", class: "close-detail", onclick: () => { box.hidden = true; } }, "×")),
    el("p", {}, EH.sevBadge(a.severity), " ", message(a)),
    el("p", { class: "muted" }, `${EH.siteName(a.site_id)} · ${EH.deviceName(a.device_id)} · `,
      tr("首次发生 ", "first raised "), EH.fmtTime(a.first_raised_at, tz), tr(` · 发生 ${a.activations} 次`, ` · ${a.activations} activation(s)`)),
    el("ul", { class: "limit" }, facts.map((f) => el("li", {}, f))),
    el("table", { class: "evidence" }, el("tbody", {}, Object.entries(ev).map(([k, v]) =>
      el("tr", {}, el("th", {}, k), el("td", {}, typeof v === "object" ? JSON.stringify(v) : String(v)))))),
    el("div", { id: "trend", class: "chart" }));
  box.scrollIntoView({ block: "nearest" });
  if (!a.device_id) return;
  const dev = EH.names.devices.get(a.device_id) || {};
  const pick = TREND.find(([t]) => a.type.startsWith(t));
  const chans = ev.channel ? [ev.channel] : pick ? pick[1] : ["active_power"];
  const t0 = new Date(a.raised_at).getTime();
  const start = new Date(t0 - 6 * 3600e3).toISOString();
  const end = new Date(Math.min(Date.now(), t0 + 2 * 3600e3) + 60e3).toISOString();
  try {
    const s = await api(`/telemetry/${encodeURIComponent(a.device_id)}/series?channels=${chans.join(",")}` +
      `&start=${encodeURIComponent(start)}&end=${encodeURIComponent(end)}`);
    const g = (ch) => EH.glossary().channels[ch] || { scale: 1, unit: "" };
    EH.chart(document.getElementById("trend"), {
      animation: false, tooltip: { trigger: "axis" }, legend: { top: 0 },
      grid: { left: 50, right: 20, top: 30, bottom: 30 },
      xAxis: EH.timeAxis(tz), yAxis: { type: "value", scale: true, name: g(chans[0]).unit },
      series: chans.map((ch) => ({
        name: EH.channelLabel(ch), type: "line", showSymbol: false,
        data: s.times.map((t, i) => [t, s.values[ch][i] === null ? null : s.values[ch][i] * g(ch).scale]),
        markLine: ch === chans[0] ? { symbol: "none", data: [{ xAxis: a.raised_at, name: tr("告警", "alarm") }],
          lineStyle: { color: "#b2182b" }, label: { formatter: tr("告警", "alarm") } } : undefined,
      })),
    });
    document.getElementById("trend").dataset.points = String(s.times.length);
    document.getElementById("trend").title = dev.name || a.device_id;
  } catch (err) { EH.showError(err); }
}

// ------------------------------------------------------------------ work orders
function orderActions(w, note) {
  if (w.state === "closed") return [];
  const out = [note];
  if (w.state === "new") {
    const who = el("select", { class: "assignee", "aria-label": tr("负责人", "assignee") },
      el("option", { value: "" }, tr("— 指派 —", "— assign —")),
      [...EH.names.users.values()].map((u) => el("option", { value: u.id, selected: u.id === w.assignee }, u.name)));
    out.push(who, el("button", { type: "button", class: "assign", onclick: () => who.value && act(
      () => api(`/workorders/${w.id}/assign`, { method: "POST", body: { engineer: who.value } }),
      tr("已指派", "Assigned")) }, tr("指派", "Assign")));
  }
  const to = NEXT[w.state];
  out.push(el("button", { type: "button", class: "to-" + to, disabled: to === "dispatched" && !w.assignee,
    onclick: () => act(() => api(`/workorders/${w.id}/transition`, { method: "POST", body: { to, note: note.value } }),
      tr(`工单 #${w.id} ${NEXT_WORDS[to][0]}`, `Order #${w.id}: ${NEXT_WORDS[to][1]}`)) }, tr(...NEXT_WORDS[to])));
  return out;
}

function orderRow(w) {
  const note = el("input", { class: "note", placeholder: tr("处理说明", "note"), maxlength: "4000" });
  const tz = EH.siteZone(w.site_id);
  return el("tr", { "data-wo-id": String(w.id), class: w.overdue ? "overdue" : "" },
    el("td", { "data-label": "#" }, String(w.id)),
    el("td", { "data-label": tr("级别", "Severity") }, EH.sevBadge(w.severity)),
    el("td", { "data-label": tr("站点", "Site") }, EH.named(EH.siteName(w.site_id), w.site_id)),
    el("td", { "data-label": tr("标题", "Title") }, w.title,
      el("button", { type: "button", class: "log link", onclick: (ev) => toggleLog(w, ev.target) }, tr("记录", "log"))),
    el("td", { "data-label": tr("状态", "State"), class: "state" }, EH.words("wo_states", w.state)),
    el("td", { "data-label": tr("负责人", "Assignee") }, EH.named(EH.userName(w.assignee), w.assignee)),
    el("td", { "data-label": tr("到期", "Due") }, EH.fmtTime(w.due_at, tz), w.overdue ? el("b", {}, tr(" 超时", " overdue")) : ""),
    el("td", { class: "actions" }, orderActions(w, note)));
}

async function toggleLog(w, btn) {
  const row = btn.closest("tr");
  if (row.nextElementSibling && row.nextElementSibling.classList.contains("log-row")) {
    row.nextElementSibling.remove();
    return;
  }
  try {
    const log = await api(`/workorders/${w.id}/log`);
    const tz = EH.siteZone(w.site_id);
    row.after(el("tr", { class: "log-row" }, el("td", { colspan: "8" }, el("ol", { class: "wo-log" }, log.map((r) =>
      el("li", {}, EH.fmtTime(r.time, tz), " · ", EH.userName(r.user_id), " · ",
        r.to_state && r.to_state !== r.from_state ? EH.words("wo_states", r.to_state) : r.action, r.note ? " — " + r.note : ""))))));
  } catch (err) { EH.showError(err); }
}

// ------------------------------------------------------------------ escalations and inspections
function escalationRow(e, orders) {
  const w = orders.get(e.work_order_id);
  const stage = { response: ["响应", "response"], arrival: ["到场", "arrival"], repair: ["修复", "repair"] }[e.stage];
  return el("tr", { "data-esc-id": String(e.id) },
    el("td", { "data-label": tr("时间", "Time") }, EH.fmtTime(e.time, w && EH.siteZone(w.site_id))),
    el("td", { "data-label": tr("工单", "Order") }, `#${e.work_order_id} `, w ? w.title : ""),
    el("td", { "data-label": tr("超时环节", "Late stage") }, stage ? tr(...stage) : e.stage),
    el("td", { "data-label": tr("级别", "Level") }, String(e.level)),
    el("td", { "data-label": tr("邮件", "Mail") }, e.mail_state));
}

function inspectionRow(i) {
  const tz = EH.siteZone(i.site_id);
  const state = { scheduled: ["待巡检", "scheduled"], done: ["已完成", "done"], missed: ["漏检", "missed"] }[i.state];
  const form = el("form", { class: "inspect", hidden: true },
    i.checklist.map((item) => el("label", {}, el("input", { type: "checkbox", name: item, checked: true }), " ", item)),
    el("input", { name: "note", placeholder: tr("巡检备注", "note"), maxlength: "4000" }),
    el("button", { type: "submit" }, tr("提交结果", "Record results")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const results = {};
    for (const item of i.checklist) results[item] = { ok: form.elements[item].checked, note: "" };
    act(() => api(`/inspections/${i.id}/result`, { method: "POST", body: { results, note: form.elements.note.value } }),
      tr("巡检结果已记录", "Inspection recorded"));
  });
  return el("tr", { "data-inspection-id": String(i.id), class: i.state === "missed" ? "overdue" : "" },
    el("td", { "data-label": tr("计划", "Plan") }, i.plan_name),
    el("td", { "data-label": tr("站点", "Site") }, EH.named(EH.siteName(i.site_id), i.site_id)),
    el("td", { "data-label": tr("到期", "Due") }, EH.fmtTime(i.due, tz)),
    el("td", { "data-label": tr("状态", "State") }, state ? tr(...state) : i.state),
    el("td", { class: "actions" }, i.state === "done" ? EH.userName(i.engineer) : [
      el("button", { type: "button", class: "record", onclick: () => { form.hidden = !form.hidden; } }, tr("记录结果", "Record")),
      form]));
}

function setupPlanForm() {
  const f = document.getElementById("plan-form");
  const sel = f.elements.site_id;
  sel.replaceChildren(...[...EH.names.sites.values()].map((s) => el("option", { value: s.id }, s.name)));
  f.elements.first_due.value = new Date(Date.now() + 86400e3).toISOString().slice(0, 16);
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const checklist = f.elements.checklist.value.split(/[,,\n]/).map((x) => x.trim()).filter(Boolean);
    act(() => api("/inspections/plans", { method: "POST", body: {
      site_id: sel.value, name: f.elements.name.value, interval_days: Number(f.elements.interval_days.value),
      checklist, first_due: new Date(f.elements.first_due.value).toISOString() } }),
    tr("巡检计划已创建", "Inspection plan created"));
  });
}

// ------------------------------------------------------------------ load
async function load() {
  try {
    const [alarms, orders, escalations, inspections] = await Promise.all([
      api("/alarms?open_only=true&limit=1000"), api("/workorders?limit=1000"),
      api("/workorders/escalations"), api("/inspections?state=scheduled&limit=200"),
    ]);
    const open = orders.filter((w) => w.state !== "closed");
    openOrderOf = new Map(open.filter((w) => w.alarm_id !== null).map((w) => [w.alarm_id, w]));
    const active = alarms.filter((a) => OPEN_STATES.includes(a.state))
      .sort((x, y) => (SEV_ORDER[x.severity] - SEV_ORDER[y.severity]) || (x.raised_at < y.raised_at ? 1 : -1));
    EH.fill(document.querySelector("#alarms tbody"), active.map(alarmRow), tr("无活动告警", "No active alarm"), 7);
    document.getElementById("alarm-count").textContent = String(active.length);
    announce(active);
    const overdue = open.filter((w) => w.overdue);
    document.getElementById("overdue-count").textContent = String(overdue.length);
    open.sort((x, y) => (y.overdue - x.overdue) || (x.due_at < y.due_at ? -1 : 1));
    EH.fill(document.querySelector("#orders tbody"), open.map(orderRow), tr("无未关闭工单", "No open order"), 8);
    document.getElementById("open-count").textContent = String(open.length);
    const byId = new Map(orders.map((w) => [w.id, w]));
    EH.fill(document.querySelector("#escalations tbody"), escalations.slice(-50).reverse().map((e) => escalationRow(e, byId)),
      tr("无升级通知", "No escalation"), 5);
    document.getElementById("esc-count").textContent = String(escalations.length);
    inspections.sort((x, y) => (x.due < y.due ? -1 : 1));
    EH.fill(document.querySelector("#inspections tbody"), inspections.map(inspectionRow), tr("无待巡检", "No patrol due"), 5);
    document.getElementById("updated").textContent = tr("更新于 ", "Updated ") + EH.fmtTime(new Date().toISOString());
    document.body.dataset.loaded = "1";
  } catch (err) {
    EH.showError(err);
  }
}

EH.init().then((user) => {
  me = user;
  setupAnnouncer();
  setupPlanForm();
  document.getElementById("refresh").addEventListener("click", load);
  document.getElementById("exports").append(
    el("span", {}, tr("告警 ", "Alarms ")), EH.exportButtons("/alarms", "alarms"),
    el("span", {}, tr(" 工单 ", " Work orders ")), EH.exportButtons("/workorders", "workorders"));
  load();
  setInterval(load, 30000);
}).catch(EH.showError);
