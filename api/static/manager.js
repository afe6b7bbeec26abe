// Customer manager: my customers' status tiles, escalations to me (open one), the weekly review,
// missed service commitments of the month, survey results and the alarm KPIs with their ISA-18.2 verdicts.
"use strict";

const { el, tr, api } = EH;
const VERDICT = { acceptable: ["可接受", "acceptable"], manageable: ["可管理", "manageable"], overloaded: ["过载", "overloaded"] };
const STAGE = { response: ["响应", "response"], arrival: ["到场", "arrival"], repair: ["修复", "repair"] };

function customerTile(c, lastReport, card) {
  const alarms = Object.values(c.open_alarms).reduce((x, y) => x + y, 0);
  const compliance = c.closed_30d ? EH.fmtNum(100 * c.closed_in_time_30d / c.closed_30d, 0) + " %" : "–";
  const bad = c.open_alarms.critical || c.overdue_orders || c.escalations || (card && card.missed);
  return el("div", { class: "tile " + (bad ? "bad" : alarms ? "warn" : ""), "data-customer-id": c.customer_id },
    el("h3", { title: c.customer_id }, c.name),
    el("div", { class: "kv" },
      el("span", {}, tr("未关闭告警", "open alarms")), el("span", {}, String(alarms),
        c.open_alarms.critical ? el("b", {}, tr(` (紧急 ${c.open_alarms.critical})`, ` (${c.open_alarms.critical} critical)`)) : ""),
      el("span", {}, tr("未关闭 / 超时工单", "open / overdue orders")), el("span", {}, `${c.open_orders} / ${c.overdue_orders}`),
      el("span", {}, tr("升级", "escalations")), el("span", {}, String(c.escalations)),
      el("span", {}, tr("最近报告", "last report")), el("span", {}, lastReport || "–"),
      el("span", {}, tr("满意度", "survey score")),
      el("span", {}, c.survey_mean === null ? "–" : `${EH.fmtNum(c.survey_mean, 1)} / 5 (${c.survey_count})`),
      el("span", {}, tr("30 天按时率", "in time, 30 days")), el("span", {}, compliance),
      el("span", {}, tr("本月未兑现承诺", "commitments missed this month")),
      el("span", { class: "missed" + (card && card.missed ? " commit-missed" : "") },
        card ? tr(`${card.missed} / ${card.commitments.length} 项`, `${card.missed} of ${card.commitments.length}`) : tr("无合同", "no contract"))),
    reviewButton(c.customer_id, card ? Number(card.month.slice(0, 4)) : new Date().getFullYear()));
}

// the yearly service review pack for the review meeting with the customer
function reviewButton(customerId, year) {
  return el("button", { type: "button", class: "review",
    onclick: () => EH.download(`/reviews/${encodeURIComponent(customerId)}/${year}?lang=${EH.lang}`, `review-${customerId}-${year}-${EH.lang}.pdf`) },
  tr(`${year} 年度服务总结 PDF`, `${year} yearly review PDF`));
}

async function openOrder(id) {
  const box = document.getElementById("order");
  try {
    const [w, log] = await Promise.all([api(`/workorders/${id}`), api(`/workorders/${id}/log`)]);
    const tz = EH.siteZone(w.site_id);
    const ok = (x) => (x === null ? "–" : x ? tr("按时", "in time") : tr("超时", "late"));
    box.replaceChildren(
      el("h2", {}, tr("工单 ", "Work order "), `#${w.id} `, EH.sevBadge(w.severity), " ", w.title),
      el("div", { class: "kv" },
        el("span", {}, tr("站点", "site")), el("span", {}, EH.siteName(w.site_id)),
        el("span", {}, tr("状态", "state")), el("span", { class: "state" }, EH.words("wo_states", w.state)),
        el("span", {}, tr("负责人", "assignee")), el("span", {}, EH.userName(w.assignee)),
        el("span", {}, tr("当前环节到期", "stage due")), el("span", {}, EH.fmtTime(w.due_at, tz), w.overdue ? tr(" 超时", " overdue") : ""),
        el("span", {}, tr("响应 / 到场 / 修复", "response / arrival / repair")),
        el("span", {}, `${ok(w.response_ok)} / ${ok(w.arrival_ok)} / ${ok(w.repair_ok)}`)),
      el("ol", { class: "wo-log" }, log.map((r) => el("li", {}, EH.fmtTime(r.time, tz), " · ", EH.userName(r.user_id), " · ",
        r.to_state && r.to_state !== r.from_state ? EH.words("wo_states", r.to_state) : r.action, r.note ? " — " + r.note : ""))),
      el("a", { href: `/web/console?lang=${EH.lang}` }, tr("到监控台处理", "Handle it in the console")));
    box.hidden = false;
    box.dataset.woId = String(w.id);
    box.scrollIntoView({ block: "nearest" });
  } catch (err) { EH.showError(err); }
}

function reviewRows(r, customerName) {
  const row = (name, c, cls) => el("tr", { class: cls }, el("td", { class: "name" }, el("b", {}, name)),
    el("td", { "data-label": tr("未关闭", "Open") }, String(c.open)), el("td", { "data-label": tr("超时", "Overdue") }, String(c.overdue)),
    el("td", { "data-label": tr("已关闭", "Closed") }, String(c.closed)),
    el("td", { "data-label": tr("按时关闭", "In time") }, String(c.closed_in_time)));
  return [row(tr("合计", "Total"), r.total, "total"),
    ...Object.entries(r.by_customer).map(([k, c]) => row(customerName[k] || k, c, "customer")),
    ...Object.entries(r.by_engineer).map(([k, c]) => row(EH.userName(k), c, "engineer"))];
}

function surveyBox(s) {
  const dist = [1, 2, 3, 4, 5].map((n) => el("div", { class: "bar" }, el("span", {}, `${n}★`),
    el("meter", { min: "0", max: String(Math.max(1, s.count)), value: String(s.distribution[String(n)] || 0) }),
    el("span", {}, String(s.distribution[String(n)] || 0))));
  return [el("div", { class: "big" }, s.mean_rating === null ? "–" : `${EH.fmtNum(s.mean_rating, 2)} / 5`),
    el("p", { class: "muted" }, tr(`${s.count} 份答卷`, `${s.count} answer(s)`)), ...dist];
}

async function load() {
  const [customers, escalations, review, surveys, kpi, reports] = await Promise.all([
    api("/dashboard/customers"), api("/workorders/escalations"), api("/workorders/review"), api("/surveys/results"),
    api("/alarms/kpi?group_by=site"), api("/reports").catch(() => []),
  ]);
  const last = {};
  for (const r of reports) if (!last[r.customer_id] || r.month > last[r.customer_id]) last[r.customer_id] = r.month;
  // this month's scorecard per customer; a customer without a contract file answers 404
  const cards = await Promise.all(customers.map((c) => api(`/commitments/${encodeURIComponent(c.customer_id)}`).catch(() => null)));
  document.getElementById("customers").replaceChildren(...customers.map((c, i) => customerTile(c, last[c.customer_id], cards[i])));
  EH.fill(document.querySelector("#escalations tbody"), escalations.slice().reverse().map((e) => el("tr", { "data-esc-id": String(e.id) },
    el("td", { "data-label": tr("时间", "Time") }, EH.fmtTime(e.time)),
    el("td", { "data-label": tr("工单", "Order") }, `#${e.work_order_id}`),
    el("td", { "data-label": tr("环节", "Stage") }, STAGE[e.stage] ? tr(...STAGE[e.stage]) : e.stage),
    el("td", { "data-label": tr("级别", "Level") }, String(e.level)),
    el("td", {}, el("button", { type: "button", class: "open", onclick: () => openOrder(e.work_order_id) }, tr("查看", "Open"))))),
  tr("无升级通知", "No escalation"), 5);
  document.getElementById("esc-count").textContent = String(escalations.length);
  document.getElementById("week").textContent = `${review.week_start.slice(0, 10)} – ${review.week_end.slice(0, 10)}`;
  const customerName = Object.fromEntries(customers.map((c) => [c.customer_id, c.name]));
  EH.fill(document.querySelector("#review tbody"), reviewRows(review, customerName), "–", 5);
  document.getElementById("surveys").replaceChildren(...surveyBox(surveys));
  EH.fill(document.querySelector("#kpi tbody"), kpi.groups.map((g) => el("tr", { "data-site-id": g.group },
    el("td", { "data-label": tr("站点", "Site") }, EH.named(EH.siteName(g.group), g.group)),
    el("td", { "data-label": tr("每小时", "Per hour") }, EH.fmtNum(g.per_hour, 2)),
    el("td", { "data-label": tr("10 分钟最多", "Max / 10 min") }, String(g.max_per_10min)),
    el("td", { "data-label": tr("长期存在", "Stale") }, String(g.stale.length)),
    el("td", { "data-label": tr("结论", "Verdict"), class: "verdict-" + g.verdict }, tr(...(VERDICT[g.verdict] || [g.verdict, g.verdict]))))),
  "–", 5);
  document.body.dataset.loaded = "1";
}

EH.init().then(() => {
  document.getElementById("survey-export").append(EH.exportButtons("/surveys", "surveys"));
  load().catch(EH.showError);
}).catch(EH.showError);
