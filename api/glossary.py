"""Human labels in zh/en for the channel glossary (:mod:`core.channels`), device kinds, alarm and
work-order states, severities and the state codes of chargers and inverters.

The units come from :data:`core.channels.CHANNELS`; the web pages show a value as
``label value unit`` with the display scale given here (W → kW, Wh → kWh).
"""

from __future__ import annotations

import re
from functools import cache

from core.channels import CHANNELS, IEC61851_STATES, OCPP_STATUS

_STEMS: dict[str, tuple[str, str]] = {
    "voltage": ("电压", "voltage"), "current": ("电流", "current"), "active_power": ("有功功率", "active power"),
    "reactive_power": ("无功功率", "reactive power"), "apparent_power": ("视在功率", "apparent power"),
    "power_factor": ("功率因数", "power factor"), "frequency": ("频率", "frequency"),
    "energy_import": ("正向有功电量", "energy imported"), "energy_export": ("反向有功电量", "energy exported"),
    "reactive_energy_import": ("感性无功电量", "reactive energy (inductive)"),
    "reactive_energy_export": ("容性无功电量", "reactive energy (capacitive)"),
    "thd_voltage": ("电压总谐波畸变率", "voltage THD"), "thd_current": ("电流总谐波畸变率", "current THD"),
    "demand_active_power": ("当前需量", "present demand"),
    "demand_active_power_max": ("本期最大需量", "maximum demand this period"),
    "winding_temperature": ("绕组温度", "winding temperature"), "fan_running": ("风机运行", "fan running"),
    "temperature_alarm": ("超温报警", "over-temperature alarm"), "temperature_trip": ("超温跳闸", "over-temperature trip"),
    "dc_voltage": ("直流电压", "DC voltage"), "dc_current": ("直流电流", "DC current"), "dc_power": ("直流功率", "DC power"),
    "temperature_cabinet": ("机柜温度", "cabinet temperature"),
    "temperature_heatsink": ("散热器温度", "heat-sink temperature"),
    "inverter_state": ("逆变器状态", "inverter state"), "inverter_events": ("逆变器事件", "inverter events"),
    "irradiance_poa": ("组件面辐照度", "plane-of-array irradiance"),
    "temperature_module": ("组件温度", "module temperature"), "charger_state": ("控制导引状态", "pilot state"),
    "ocpp_status": ("充电桩状态", "charger status"), "session_energy": ("本次充电电量", "session energy"),
    "fault_code": ("故障码", "fault code"), "max_current_offered": ("允许充电电流", "current offered"),
    "outdoor_temperature": ("室外温度", "outdoor temperature"), "online": ("在线", "online"),
    "ambient_temperature": ("环境温度", "ambient temperature"), "relative_humidity": ("相对湿度", "relative humidity"),
    "wind_speed": ("风速", "wind speed"), "irradiance_ghi": ("水平总辐照度", "global horizontal irradiance"),
    "current_n": ("中性线电流", "neutral current"), "voltage_angle": ("电压相角", "voltage angle"),
}
# display unit and scale per stored unit
_DISPLAY = {"W": ("kW", 1e-3), "Wh": ("kWh", 1e-3), "var": ("kvar", 1e-3), "VA": ("kVA", 1e-3),
            "varh": ("kvarh", 1e-3), "degC": ("°C", 1.0), "1": ("", 1.0), "W/m2": ("W/m²", 1.0),
            "deg": ("°", 1.0)}
_PHASE = re.compile(r"^(.*)_l(\d{1,2})$")
_MPPT = re.compile(r"^mppt(\d)_(dc_current|dc_voltage|dc_power)$")

OCPP_ZH = ("空闲", "准备中", "充电中", "桩端暂停", "车端暂停", "结束中", "已预约", "不可用", "故障")
IEC61851_ZH = ("未连接", "已连接未充电", "充电中", "充电中(需通风)", "无电源", "故障")
INVERTER_STATES = {1: ("关机", "off"), 2: ("休眠", "sleeping"), 3: ("启动中", "starting"), 4: ("发电(MPPT)", "MPPT"),
                   5: ("限功率", "throttled"), 6: ("关机中", "shutting down"), 7: ("故障", "fault"),
                   8: ("待机", "standby")}
KINDS = {"meter": ("电表", "meter"), "transformer": ("变压器", "transformer"),
         "pv_inverter": ("光伏逆变器", "PV inverter"), "ev_charger": ("充电桩", "EV charger"),
         "weather_station": ("气象站", "weather station")}
SEVERITIES = {"critical": ("紧急", "critical"), "major": ("重要", "major"), "minor": ("次要", "minor"),
              "warning": ("提示", "warning")}
ALARM_STATES = {"active-unacked": ("未确认", "active, unacknowledged"), "active-acked": ("已确认", "active, acknowledged"),
                "rtn-unacked": ("已恢复未确认", "returned, unacknowledged"), "cleared": ("已关闭", "cleared"),
                "shelved": ("已搁置", "shelved"), "suppressed-by-design": ("被抑制", "suppressed by design")}
WO_STATES = {"new": ("新建", "new"), "dispatched": ("已派工", "dispatched"), "on_site": ("已到场", "on site"),
             "resolved": ("已处理", "resolved"), "closed": ("已关闭", "closed")}


def channel_label(name: str) -> tuple[str, str]:
    """(zh, en) label of a channel, e.g. ``voltage_l1`` → ("电压 L1", "voltage L1")."""
    if name in _STEMS:
        return _STEMS[name]
    m = _MPPT.match(name)
    if m:
        zh, en = _STEMS[m.group(2)]
        return f"MPPT{m.group(1)} {zh}", f"MPPT {m.group(1)} {en}"
    m = _PHASE.match(name)
    if m and m.group(1) in _STEMS:
        zh, en = _STEMS[m.group(1)]
        phase = "L" + "-L".join(m.group(2)) if len(m.group(2)) == 2 else "L" + m.group(2)
        return f"{zh} {phase}", f"{en} {phase}"
    return name, name.replace("_", " ")


@cache
def glossary() -> dict:
    """Everything the pages need to show a value or a state in words, in both languages."""
    channels = {}
    for name, ch in CHANNELS.items():
        zh, en = channel_label(name)
        unit, scale = _DISPLAY.get(ch.unit, (ch.unit, 1.0))
        channels[name] = {"zh": zh, "en": en, "unit": unit, "scale": scale, "nature": ch.nature}
    states = {
        "ocpp_status": {str(i): [zh, en] for i, (zh, en) in enumerate(zip(OCPP_ZH, OCPP_STATUS, strict=True))},
        "charger_state": {str(i + 1): [zh, f"{s} ({en})"] for i, (s, zh, en) in enumerate(zip(
            IEC61851_STATES, IEC61851_ZH, ("not connected", "connected", "charging", "charging, ventilated",
                                            "no power", "fault"), strict=True))},
        "inverter_state": {str(k): list(v) for k, v in INVERTER_STATES.items()},
        "fan_running": {"0": ["停止", "stopped"], "1": ["运行", "running"]},
        "temperature_alarm": {"0": ["正常", "normal"], "1": ["报警", "alarm"]},
        "temperature_trip": {"0": ["正常", "normal"], "1": ["跳闸", "tripped"]},
        "online": {"0": ["离线", "offline"], "1": ["在线", "online"]},
    }
    return {"channels": channels, "states": states, "kinds": {k: list(v) for k, v in KINDS.items()},
            "severities": {k: list(v) for k, v in SEVERITIES.items()},
            "alarm_states": {k: list(v) for k, v in ALARM_STATES.items()},
            "wo_states": {k: list(v) for k, v in WO_STATES.items()}}
