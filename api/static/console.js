// Engineers' alarm console: active alarms (ack, open a work order), overdue and open work orders.
"use strict";

const { el, tr, api } = EH;
const OPEN_STATES = ["active-unacked", "active-acked", "rtn-unacked", "shelved"];
const SEV_ORDER = { critical: 0, major: 1, minor: 2, warning: 3 };

function sevBadge(sev) {
  return el("span", { class: "sev sev-" + sev }, sev);
}

function alarmRow(a) {
  const note = el("input", { class: "note", placeholder: tr("备注", "note"), maxlength: "2000" });
  const ack = el("button", {
    type: "button", class: "ack", disabled: a.acked,
    onclick: async () => {
      try {
        await api(`/alarms/${a.id}/ack`, { method: "POST", body: { note: note.value } });
        await load();
      } catch (err) { EH.showError(err); }
    },
  }, tr("确认", "Ack"));
  const wo = el("button", {
    type: "button", class: "wo",
    onclick: async () => {
      try {
        const w = await api("/workorders", {
          method: "POST",
          body: {
            site_id: a.site_id, device_id: a.device_id, alarm_id: a.id, severity: a.severity,
            title: (EH.lang === "zh" ? a.message_zh : a.message_en) || a.type, description: note.value,
          },
        });
        EH.clearError();
        document.getElementById("updated").textContent = tr(`已创建工单 #${w.id}`, `Work order #${w.id} opened`);
        await load();
      } catch (err) { EH.showError(err); }
    },
  }, tr("派工单", "Open work order"));
  return el("tr", { "data-alarm-id": String(a.id), class: a.acked ? "acked" : "unacked" },
    el("td", {}, sevBadge(a.severity)), el("td", {}, a.state), el("td", {}, a.site_id),
    el("td", {}, a.device_id || "–"), el("td", {}, (EH.lang === "zh" ? a.message_zh : a.message_en) || a.type),
    el("td", {}, EH.fmtTime(a.raised_at)), el("td", { class: "actions" }, note, ack, wo));
}

function orderRow(w) {
  return el("tr", { "data-wo-id": String(w.id), class: w.overdue ? "overdue" : "" },
    el("td", {}, String(w.id)), el("td", {}, sevBadge(w.severity)), el("td", {}, w.site_id), el("td", {}, w.title),
    el("td", {}, w.state), el("td", {}, w.assignee || tr("未指派", "unassigned")),
    el("td", {}, EH.fmtTime(w.due_at) + (w.overdue ? tr(" 超时", " overdue") : "")));
}

async function load() {
  try {
    const [alarms, overdue, orders] = await Promise.all([
      api("/alarms?open_only=true&limit=1000"),
      api("/workorders?overdue=true&limit=1000"),
      api("/workorders?limit=1000"),
    ]);
    const active = alarms.filter((a) => OPEN_STATES.includes(a.state))
      .sort((x, y) => (SEV_ORDER[x.severity] - SEV_ORDER[y.severity]) || (x.raised_at < y.raised_at ? 1 : -1));
    EH.fill(document.querySelector("#alarms tbody"), active.map(alarmRow), tr("无活动告警", "No active alarm"), 7);
    document.getElementById("alarm-count").textContent = String(active.length);
    EH.fill(document.querySelector("#overdue tbody"), overdue.map(orderRow), tr("无超时工单", "No overdue order"), 7);
    document.getElementById("overdue-count").textContent = String(overdue.length);
    const open = orders.filter((w) => w.state !== "closed");
    EH.fill(document.querySelector("#orders tbody"), open.map(orderRow), tr("无未关闭工单", "No open order"), 7);
    document.getElementById("open-count").textContent = String(open.length);
    document.body.dataset.loaded = "1";
  } catch (err) {
    EH.showError(err);
  }
}

EH.init().then(() => {
  load();
  setInterval(load, 30000);
}).catch(EH.showError);
