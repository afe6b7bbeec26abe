"""Every fault finding type in one table: severity, zh/en text showing the measurement, recommendation.

A check in :mod:`analytics.assess` computes a flag array and an evidence dict per run; the texts
come from the row of its type here, formatted with that evidence (``str.format`` fields), so the
message always carries the number it rests on.  A new check = its function, its test, one row.

Formatting: ``{x:+p}`` prints a signed percentage with a true minus sign (``−29``); ``{x:h}``
prints a duration in hours with one decimal; a missing (None) value prints as ``?``.  A row's
``derive`` adds fields computed from the evidence (decoded event words, wording that depends on
the case) before formatting.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: SunSpec model 103 (inverter) Evt1 bit field, bit 0 first: (name, zh, en)
SUNSPEC_EVT1: tuple[tuple[str, str, str], ...] = (
    ("GROUND_FAULT", "接地故障", "ground fault"),
    ("DC_OVER_VOLT", "直流过压", "DC over-voltage"),
    ("AC_DISCONNECT", "交流开关断开", "AC disconnect open"),
    ("DC_DISCONNECT", "直流开关断开", "DC disconnect open"),
    ("GRID_DISCONNECT", "电网断开", "grid disconnected"),
    ("CABINET_OPEN", "机柜门打开", "cabinet open"),
    ("MANUAL_SHUTDOWN", "手动关机", "manual shutdown"),
    ("OVER_TEMP", "过温", "over-temperature"),
    ("OVER_FREQUENCY", "频率过高", "over-frequency"),
    ("UNDER_FREQUENCY", "频率过低", "under-frequency"),
    ("AC_OVER_VOLT", "交流过压", "AC over-voltage"),
    ("AC_UNDER_VOLT", "交流欠压", "AC under-voltage"),
    ("BLOWN_STRING_FUSE", "组串熔断器熔断", "blown string fuse"),
    ("UNDER_TEMP", "温度过低", "under-temperature"),
    ("MEMORY_LOSS", "存储器丢失", "memory loss"),
    ("HW_TEST_FAILED", "硬件自检失败", "hardware test failed"),
)

#: Modbus exception codes (function code + 0x80 in the answer): zh, en
MODBUS_EXCEPTIONS: dict[int, tuple[str, str]] = {
    1: ("非法功能码", "illegal function"), 2: ("非法数据地址", "illegal address"),
    3: ("非法数据值", "illegal data value"), 4: ("从站设备故障", "server device failure"),
    5: ("已确认，处理中", "acknowledge"), 6: ("从站设备忙", "server device busy"),
    8: ("存储奇偶校验错", "memory parity error"), 10: ("网关路径不可用", "gateway path unavailable"),
    11: ("网关目标设备无响应", "gateway target device failed to respond"),
}

OCPP_STATUS = ("Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing", "Reserved",
               "Unavailable", "Faulted")


def decode_evt1(word) -> tuple[list[str], list[str], list[str]]:
    """Names, zh and en words of the bits set in a SunSpec Evt1 word (empty lists for None/0)."""
    if word is None or not math.isfinite(float(word)) or int(word) <= 0:
        return [], [], []
    w = int(word)
    rows = [SUNSPEC_EVT1[b] for b in range(len(SUNSPEC_EVT1)) if w >> b & 1]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


class _Fmt(string.Formatter):
    def format_field(self, value, format_spec):
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "?"
        if format_spec == "+p":                      # signed whole percent, true minus sign
            v = round(float(value))
            return ("−" if v < 0 else "+" if v > 0 else "±") + str(abs(v))
        if format_spec == "h":                       # hours, one decimal
            return f"{float(value):.1f}"
        return super().format_field(value, format_spec)


_FMT = _Fmt()


@dataclass(frozen=True)
class FindingType:
    """One row: the severity and the texts of a finding type (``str.format`` templates over the evidence)."""

    severity: str
    zh: str
    en: str
    rec_zh: str
    rec_en: str
    derive: Callable[[Mapping], dict] | None = None

    def render(self, evidence: Mapping) -> tuple[str, str]:
        fields = dict(evidence) | (self.derive(evidence) if self.derive else {})
        return _FMT.vformat(self.zh, (), _Defaulting(fields)), _FMT.vformat(self.en, (), _Defaulting(fields))


class _Defaulting(dict):
    def __missing__(self, key):
        return None


def _comms(ev: Mapping) -> dict:
    code = ev.get("modbus_exception")
    if code is not None:
        zh, en = MODBUS_EXCEPTIONS.get(int(code), ("未知异常", "unknown exception"))
        return {"cause_zh": f"设备应答 Modbus 异常 {int(code):02d}（{zh}）",
                "cause_en": f"Device answers with Modbus exception {int(code):02d} ({en})"}
    if ev.get("status") and ev["status"] not in ("timeout", "offline"):
        return {"cause_zh": f"设备采集失败（{ev['status']}）", "cause_en": f"Device polls fail ({ev['status']})"}
    return {"cause_zh": "设备通信中断（无应答）", "cause_en": "Device not communicating (no answer)"}


def _events(ev: Mapping) -> dict:
    _, zh, en = decode_evt1(ev.get("inverter_events"))
    return {"events_zh": "、".join(zh) or "无事件码", "events_en": ", ".join(en) or "no event code"}


def _overtemp(ev: Mapping) -> dict:
    f = _FMT.format_field
    if ev.get("temperature_c") is not None and ev.get("alarm_c") is not None and ev["temperature_c"] >= ev["alarm_c"]:
        return {"trend_zh": f"已超过报警值 {f(ev['alarm_c'], 'g')} °C", "trend_en": f"above the {f(ev['alarm_c'], 'g')} °C alarm"}
    eta = ev.get("eta_to_trip_s")
    h = None if eta is None else eta / 3600.0
    return {"trend_zh": f"约 {f(h, 'h')} h 后达到跳闸值 {f(ev.get('trip_c'), 'g')} °C",
            "trend_en": f"{f(ev.get('trip_c'), 'g')} °C in about {f(h, 'h')} h"}


def _ev_fault(ev: Mapping) -> dict:
    s = ev.get("ocpp_status")
    return {"ocpp": OCPP_STATUS[int(s)] if s is not None and 0 <= int(s) < len(OCPP_STATUS) else "?"}


def _counter(ev: Mapping) -> dict:
    kind = ev.get("kind")
    zh = {"reset": "清零", "replacement": "换表（新表底数不同）", "rollover": "计数溢出回绕", "jump": "向上跳变"}.get(kind, kind)
    en = {"reset": "reset to zero", "replacement": "meter replaced (new register value)",
          "rollover": "register rollover", "jump": "upward jump"}.get(kind, kind)
    return {"kind_zh": zh, "kind_en": en}


def _clock(ev: Mapping) -> dict:
    """Basis of a clock finding: a measured offset (MQTT arrival or the meter's clock), or the sun."""
    f, off = _FMT.format_field, ev.get("offset_s")
    if off is None:
        m = f(ev.get("minutes"), ".0f")
        return {"basis_zh": f"按设备时间戳，太阳落山后仍有光伏出力/辐照 {m} 分钟",
                "basis_en": f"PV output or irradiance for {m} min while the sun is down at the device's timestamps"}
    meter = ev.get("source") == "meter_clock"
    zh_off = ("−" if off < 0 else "+") + f(abs(off), ".0f")
    lim, m = f(ev.get("limit_s"), "g"), f(ev.get("minutes"), ".0f")
    return {"basis_zh": f"{'电表时钟比采集器时钟' if meter else '设备时间戳比到达采集器的时间'}相差 {zh_off} 秒"
                        f"（限值 ±{lim} 秒），已持续 {m} 分钟",
            "basis_en": f"{'The meter clock differs from the collector clock' if meter else 'The device timestamps differ from their arrival at the collector'}"
                        f" by {f(off, '+.0f')} s (limit ±{lim} s) for {m} min",
            "offset_h": round(off / 3600.0, 2)}


def _tou(ev: Mapping) -> dict:
    f = _FMT.format_field
    share = ev.get("misallocated_share")
    pct = f(None if share is None else 100 * share, ".1f")
    if ev.get("cause") == "meter_clock":
        m = f(None if ev.get("best_clock_shift_s") is None else ev["best_clock_shift_s"] / 60, "+.0f")
        return {"pct": pct, "cause_zh": f"；电表时钟偏移约 {m} 分钟即可解释。",
                "cause_en": f"; a meter clock {m} min off explains it."}
    return {"pct": pct, "cause_zh": "，时钟偏移无法解释，电表费率时段表可能与所用电价不一致。",
            "cause_en": ", not explained by a clock shift: the meter's tariff table or our tariff is wrong."}


def _drift(ev: Mapping) -> dict:
    off = ev.get("offset_s")
    return {"abs_s": None if off is None else abs(off), "ahead_zh": "快" if (off or 0) > 0 else "慢",
            "ahead_en": "ahead" if (off or 0) > 0 else "behind"}


_T = FindingType
TYPES: dict[str, FindingType] = {
    "comms_loss": _T("major", "{cause_zh}，{duration_min:.0f} 分钟无数据。", "{cause_en}: no data for {duration_min:.0f} min.",
                     "检查设备供电、通信线路、网关和寄存器配置。",
                     "Check power, cabling, the gateway and the register map.", _comms),
    "voltage_deviation": _T("major", "电压 {worst_v:.0f} V（{deviation_pct:+p} %），超出 GB/T 12325 允许偏差 ±{band_pct:g} %"
                                     "（标称 {nominal_v:g} V）。",
                            "Voltage {worst_v:.0f} V ({deviation_pct:+p} %), outside the GB/T 12325 ±{band_pct:g} % "
                            "limit ({nominal_v:g} V nominal).",
                            "检查变压器分接头、线路压降和上级电源；持续时通知供电企业。",
                            "Check transformer tap, feeder voltage drop and the upstream supply; report to the "
                            "utility if it persists."),
    "out_of_range": _T("minor", "{channel} 读数 {value:g} 超出物理可能范围 [{lower:g}, {upper:g}]（传感器或解码故障）。",
                       "{channel} reading {value:g} outside the physically possible [{lower:g}, {upper:g}] "
                       "(sensor or decoding fault).", "检查传感器和寄存器解码（比例、字节序）。",
                       "Check the sensor and the register decoding (scale, word order)."),
    "stale_value": _T("minor", "{channel} 读数 {minutes:.0f} 分钟内只变化 {change:g}（分辨率 {resolution:g}），停在 {value:g}："
                               "读数冻结。",
                      "{channel} changed by only {change:g} in {minutes:.0f} min (resolution {resolution:g}), "
                      "stuck at {value:g}: frozen reading.", "检查电表和采集链路。",
                      "Check the meter and the acquisition chain."),
    "implausible_rate": _T("minor", "{channel} 在 {dt_s:.0f} s 内变化 {delta:+.1f}（{rate_per_min:.1f}/分钟，上限 "
                                    "{limit_per_min:g}/分钟）：传感器故障？",
                           "{channel} changed by {delta:+.1f} in {dt_s:.0f} s ({rate_per_min:.1f}/min, limit "
                           "{limit_per_min:g}/min): sensor fault?", "检查 PT100 传感器接线。",
                           "Check the PT100 sensor wiring."),
    "low_power_factor": _T("minor", "功率因数 {pf_mean:.2f}（最低 {pf_min:.2f}）持续 {minutes:.0f} 分钟低于 {limit:g}，"
                                    "将产生力调电费。",
                           "Power factor {pf_mean:.2f} (lowest {pf_min:.2f}) below {limit:g} for {minutes:.0f} min: "
                           "PF surcharge risk.", "检查无功补偿装置（电容器投切、熔断器、控制器）。",
                           "Check the capacitor bank (steps, fuses, controller)."),
    "harmonic_voltage": _T("minor", "电压总谐波畸变率 {thd_max:.1f} %，超过 GB/T 14549 限值 {limit_pct:g} %（0.38 kV）。",
                           "Voltage THD {thd_max:.1f} %, above the GB/T 14549 limit of {limit_pct:g} % (0.38 kV).",
                           "查找非线性负荷（变频器、整流设备），考虑有源滤波。",
                           "Find the non-linear loads (drives, rectifiers); consider an active filter."),
    "harmonic_current": _T("warning", "电流谐波畸变率 {thd_max:.1f} %，超过 {limit_pct:g} %。",
                           "Current THD {thd_max:.1f} %, above {limit_pct:g} %.",
                           "评估谐波源并按 IEEE 519 / GB/T 14549 核算注入电流。",
                           "Assess the harmonic source against IEEE 519 TDD / GB/T 14549 injection limits."),
    "current_unbalance": _T("minor", "三相电流不平衡度 {unbalance_max:.0f} %，超过 {limit_pct:g} %（SD 292-1988），"
                                     "最大相电流 {imax_a:.0f} A。",
                            "Three-phase current unbalance {unbalance_max:.0f} %, above {limit_pct:g} % "
                            "(SD 292-1988), highest phase {imax_a:.0f} A.", "调整单相负荷在三相间的分配。",
                            "Rebalance single-phase loads across the phases."),
    "neutral_current": _T("minor", "中性线电流为额定电流的 {neutral_max:.0f} %，超过 {limit_pct:g} %。",
                          "Neutral current {neutral_max:.0f} % of rated current, above {limit_pct:g} %.",
                          "调整三相负荷平衡，检查三次谐波。", "Rebalance the phases; check triplen harmonics."),
    "counter_reset": _T("warning", "电能计数器 {channel} 由 {before_wh:.0f} Wh 变为 {after_wh:.0f} Wh（{kind_zh}），"
                                   "已按此处理，报表不会出现负电量或虚增电量。",
                        "Energy counter {channel} went from {before_wh:.0f} Wh to {after_wh:.0f} Wh ({kind_en}); "
                        "handled so no report shows negative or inflated consumption.",
                        "核实是否换表或电表复位，并记录表底数。",
                        "Confirm a meter replacement or reset and record the readings.", _counter),
    "clock_offset": _T("minor", "{basis_zh}：设备时钟偏差约 {offset_h:+.1f} h，时间戳不可信。",
                       "{basis_en}: its clock is off by about {offset_h:+.1f} h.",
                       "校准设备时钟（NTP / 规约对时），并核对该时段数据。",
                       "Set the device clock (NTP / protocol time sync) and check the data of that period.", _clock),
    "tou_register_mismatch": _T("minor", "电表分时寄存器与电价时段不符：{misallocated_kwh:.1f} kWh（{pct} %）计入了其他费率"
                                         "{cause_zh}",
                                "The meter's TOU registers disagree with the tariff schedule: {misallocated_kwh:.1f} kWh "
                                "({pct} %) in another register{cause_en}",
                                "核对电表时钟和费率时段表与所用电价文件（电表由供电公司校准）。",
                                "Compare the meter's clock and tariff table with the tariff file we apply (the utility "
                                "sets the meter).", _tou),
    "meter_clock_drift": _T("minor", "电表时钟{ahead_zh} {abs_s:.0f} 秒（限值 {limit_s:.0f} 秒）。",
                            "The meter clock is {abs_s:.0f} s {ahead_en} (limit {limit_s:.0f} s).",
                            "请供电公司校准电表时钟。", "Have the utility set the meter clock.", _drift),
    "transformer_overtemp": _T("major", "绕组温度 {temperature_c:.0f} °C，每小时上升 {rate_c_per_h:.1f} K，{trend_zh}。",
                               "Winding temperature {temperature_c:.0f} °C, rising {rate_c_per_h:.1f} K/h, "
                               "{trend_en}.", "检查风机和通风、降低负荷，准备转移负荷。",
                               "Check fans and ventilation, reduce load, prepare to transfer load.", _overtemp),
    "transformer_trip": _T("critical", "绕组温度 {temperature_c:.0f} °C，达到跳闸值 {trip_c:g} °C。",
                           "Winding temperature {temperature_c:.0f} °C, at the {trip_c:g} °C trip point.",
                           "立即到现场处置。", "Attend on site immediately."),
    "transformer_ageing": _T("minor", "变压器 {transformer} 绝缘老化速率 {rate:.1f} 倍（热点 {hot_spot_c:.0f} °C），"
                                      "持续 {hours:h} h 高于 {limit:g} 倍，消耗寿命 {life_h:.1f} h。",
                             "Transformer {transformer} insulation ageing at {rate:.1f} times the design rate "
                             "(hot spot {hot_spot_c:.0f} °C), above {limit:g} for {hours:h} h: {life_h:.1f} h of "
                             "life used.", "检查风机和通风，降低或转移负荷，避开高温时段的峰值负荷。",
                             "Check fans and ventilation; reduce or shift load away from the hottest hours."),
    "transformer_overload": _T("major", "变压器 {transformer} 负载率 {load_pct:.0f} %，超过 {limit_pct:.0f} %"
                                        "（额定 {rated_kva:g} kVA）。",
                               "Transformer {transformer} loaded at {load_pct:.0f} %, above {limit_pct:.0f} % of its "
                               "{rated_kva:g} kVA rating.", "转移或削减负荷；评估增容或并列运行。",
                               "Shift or shed load; consider more capacity."),
    "inverter_trip": _T("major", "逆变器故障停机（SunSpec 状态 FAULT）：{events_zh}。",
                        "Inverter tripped (SunSpec state FAULT): {events_en}.",
                        "按事件码现场检查绝缘和直流侧。", "Act on the event; check insulation and the DC side on site.",
                        _events),
    "inverter_offline": _T("major", "白天辐照 {poa_wm2:.0f} W/m²（{basis}）但逆变器输出仅 {power_kw:.1f} kW。",
                           "Daylight irradiance {poa_wm2:.0f} W/m² ({basis}) but inverter output only "
                           "{power_kw:.1f} kW.", "检查交流开关、并网条件和逆变器状态。",
                           "Check the AC breaker, grid conditions and inverter state."),
    "pv_underperformance": _T("minor", "PR {pr:.2f}，低于期望（按辐照度和温度修正，IEC 61724-1）。",
                              "PR {pr:.2f}, below the irradiance- and temperature-corrected expectation "
                              "(IEC 61724-1).", "检查组件遮挡、积灰、组串和逆变器限功率。",
                              "Check shading, soiling, strings and curtailment."),
    "string_mismatch": _T("minor", "{label} 电流 {current_a:.1f} A，比{reference_zh} {reference_a:.1f} A 低 "
                                   "{deficit_pct:.0f} %。",
                          "{label} current {current_a:.1f} A, {deficit_pct:.0f} % below {reference_en} "
                          "{reference_a:.1f} A.", "检查该路组串熔断器、连接器和遮挡。",
                          "Check that string's fuse, connectors and shading."),
    "ev_fault": _T("major", "充电桩故障（OCPP {ocpp}），故障码 {fault_code}。", "Charger faulted (OCPP {ocpp}), "
                   "fault code {fault_code}.", "远程复位，无效则派单现场检修。",
                   "Try a remote reset; dispatch a technician if it persists.", _ev_fault),
    "ev_stuck": _T("minor", "状态“充电中”{minutes:.0f} 分钟，电量只增加 {energy_wh:.0f} Wh（平均 {power_w:.0f} W，"
                            "低于 {min_power_w:g} W）。",
                   "'Charging' for {minutes:.0f} min but only {energy_wh:.0f} Wh delivered (average {power_w:.0f} W, "
                   "below {min_power_w:g} W).", "检查车辆连接和充电桩接触器。",
                   "Check the vehicle connection and the charger contactor."),
    "ev_session_stuck": _T("warning", "插枪后 {minutes:.0f} 分钟仍未开始充电（OCPP Preparing，上限 {limit_min:g} 分钟）。",
                           "Plugged in for {minutes:.0f} min without charging (OCPP Preparing, limit "
                           "{limit_min:g} min).", "检查鉴权和车辆通信。",
                           "Check authorisation and vehicle communication."),
    "analysis_failed": _T("warning", "设备数据无法分析（{error}），本次未检查其故障。",
                          "Device data could not be analysed ({error}); its faults were not checked this time.",
                          "检查该设备的采集数据；其他设备不受影响。",
                          "Check the collected data of this device; other devices were analysed as usual."),
}


def texts(type_: str, evidence: Mapping) -> dict[str, str]:
    """Severity and the four texts of a finding of ``type_`` with ``evidence`` (KeyError for an unknown type)."""
    row = TYPES[type_]
    zh, en = row.render(evidence)
    return {"severity": row.severity, "explanation_zh": zh, "explanation_en": en,
            "recommendation_zh": row.rec_zh, "recommendation_en": row.rec_en}
