// Fleet overview for staff: one tile per site (devices online, open alarms, today's energy and cost)
// and a schematic energy-flow diagram of a site (grid → transformers → bus → feeders, PV, chargers).
"use strict";

const { el, tr, api } = EH;
const ROW = { grid: 0, transformer: 1, bus: 2 };
const COLOR = { grid: "#5e81ac", transformer: "#12436b", bus: "#444", meter: "#2a7f62", pv_inverter: "#d8a200",
  ev_charger: "#7b3fa0" };

function siteTile(s) {
  const nAlarms = Object.values(s.alarms).reduce((x, y) => x + y, 0);
  const cls = s.alarms.critical ? "bad" : nAlarms || s.online < s.devices ? "warn" : "";
  return el("div", { class: "tile " + cls, "data-site-id": s.site_id },
    el("h3", { title: s.site_id }, s.name),
    el("div", { class: "big" }, s.today ? `${EH.fmtNum(s.today.kwh, 0)} kWh · ¥${EH.fmtNum(s.today.yuan, 2)}` : "–"),
    el("div", { class: "kv" },
      el("span", {}, tr("在线设备", "devices online")), el("span", { class: "online" }, `${s.online} / ${s.devices}`),
      el("span", {}, tr("未关闭告警", "open alarms")),
      el("span", { class: "alarms" }, nAlarms ? Object.entries(s.alarms).map(([k, n]) => `${EH.words("severities", k)} ${n}`).join(", ") : "0")),
    el("button", { type: "button", class: "flow", onclick: () => showFlow(s.site_id) }, tr("能量流", "Energy flow")));
}

// node positions in the box's own pixels, so the graph view is not stretched one way
function layout(nodes, width, height) {
  const rows = [[], [], [], []];
  for (const n of nodes) rows[ROW[n.kind] !== undefined ? ROW[n.kind] : 3].push(n);
  const out = [];
  rows.forEach((row, r) => row.forEach((n, i) => out.push({ n, x: (i + 1) * width / (row.length + 1), y: r * height / 4 })));
  return out;
}

const kindName = (k) => ({ grid: tr("电网", "grid"), bus: tr("低压母线", "LV bus") }[k] || EH.words("kinds", k));

async function showFlow(siteId) {
  try {
    const f = await api(`/dashboard/sites/${encodeURIComponent(siteId)}/flow`);
    const card = document.getElementById("flow-card");
    card.hidden = false;
    document.getElementById("flow-site").textContent = EH.siteName(siteId);
    document.getElementById("flow-time").textContent = EH.fmtTime(new Date().toISOString(), EH.siteZone(siteId));
    const kw = (x) => (x === null || x === undefined ? "–" : `${EH.fmtNum(x, 1)} kW`);
    const box = document.getElementById("flow");
    const busWidth = Math.round(0.8 * (box.clientWidth || 800));
    const W = box.clientWidth || 800;
    const H = box.clientHeight || 400;
    const data = layout(f.nodes, W, H).map(({ n, x, y }) => ({
      name: n.id, value: [x, y], symbolSize: n.kind === "bus" ? [busWidth, 6] : [40, 40], symbol: n.kind === "bus" ? "rect" : "roundRect",
      itemStyle: { color: COLOR[n.kind] || "#888" },
      label: { show: true, position: n.kind === "bus" ? "left" : "bottom",
        formatter: n.kind === "bus" ? kindName("bus") : `${n.kind === "grid" ? kindName("grid") : EH.deviceName(n.id)}\n${n.kind === "grid" ? "" : kw(n.kw)}` },
      tooltip: { formatter: `${kindName(n.kind)} · ${n.name} (${n.id})` },
    }));
    // on hidden value axes (not the graph's own view, which stretches the symbols with the box)
    EH.chart(box, { animation: false, tooltip: {}, grid: { left: 80, right: 40, top: 30, bottom: 60 },
      xAxis: { type: "value", show: false, min: 0, max: W }, yAxis: { type: "value", show: false, inverse: true, min: -10, max: H * 0.8 },
      series: [{ type: "graph", coordinateSystem: "cartesian2d", layout: "none", data,
        edgeSymbol: ["none", "arrow"], edgeSymbolSize: 9,
        links: f.links.map((l) => ({ source: l.source, target: l.target,
          lineStyle: { width: l.kw ? Math.min(8, 1 + Math.abs(l.kw) / 100) : 1, color: "#7a8ca0" },
          label: { show: l.kw !== null && l.kw !== undefined, formatter: kw(l.kw), fontSize: 11 } })) }] });
    box.dataset.nodes = String(f.nodes.length);
    card.scrollIntoView({ block: "nearest" });
  } catch (err) { EH.showError(err); }
}

EH.init().then(async () => {
  try {
    const tiles = await api("/dashboard/fleet");
    document.getElementById("fleet").replaceChildren(...tiles.map(siteTile));
    if (tiles.length) await showFlow(tiles[0].site_id);
    document.body.dataset.loaded = "1";
  } catch (err) { EH.showError(err); }
}).catch(EH.showError);
