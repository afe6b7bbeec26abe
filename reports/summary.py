"""The words on the report's first page: what was saved, whether it is verified, what the advice is worth.

:func:`headline` turns a :class:`~reports.model.MonthlyReport` into a few plain sentences
(zh or en) for an energy manager; :func:`reasons` says why a saving cannot be verified.
Every number in them is a field of the report, printed again in the tables below.
"""

from __future__ import annotations

from reports.model import MonthlyReport, Savings

_REASONS = {
    "partial_month": ("本月尚未结束（已过 {days:g} / {of} 天），月度节能量须待整月数据齐全后核证。",
                      "the month is not over ({days:g} of {of} days): a month's saving is verified once the "
                      "whole month is in."),
    "no_model": ("站点 {site} 的基准回归模型无法建立（原因见基准模型表）。",
                 "no baseline regression model could be built for site {site} (see the baseline table)."),
    "model_fit": ("站点 {site} 的基准模型精度不足：CV(RMSE) {cv_rmse_pct:g}%（上限 20%），NMBE {nmbe_pct:g}%"
                  "（上限 ±0.005%）。",
                  "the baseline model of site {site} is not accurate enough: CV(RMSE) {cv_rmse_pct:g} % "
                  "(limit 20 %), NMBE {nmbe_pct:g} % (limit ±0.005 %)."),
    "out_of_range": ("站点 {site} 本月有 {days} / {of} 天的日均气温超出基准期的范围（{t_min:g}～{t_max:g} °C），"
                     "模型不能外推。",
                     "site {site}: {days} of {of} days had a daily mean temperature outside the baseline's range "
                     "({t_min:g} to {t_max:g} °C); the model cannot extrapolate."),
    "uncertain": ("节能量 {saved_kwh:,} kWh 小于模型的不确定度（68% 置信度下 ±{u68_kwh:,} kWh，超过节能量的 50%），"
                  "无法与零区分。",
                  "the avoided energy, {saved_kwh:,} kWh, is within the model's uncertainty (±{u68_kwh:,} kWh at "
                  "68 % confidence, more than 50 % of it): it cannot be told from zero."),
    "unit_cost_only": ("合同未约定基准期，只能比较平均单价，不能核证节能量。",
                       "the contract names no baseline period: only unit costs can be compared, which does not "
                       "verify a saving."),
}


def reasons(s: Savings, lang: str) -> list[str]:
    """Why the month's saving is not verified, one sentence each (empty when it is verified)."""
    i = 0 if lang == "zh" else 1
    return [_REASONS[r["code"]][i].format(**r) for r in s.reasons if r.get("code") in _REASONS]


def _money(x: float, lang: str) -> str:
    return f"{x:,.0f} 元" if lang == "zh" else f"{x:,.0f} yuan"


def _saving_sentence(r: MonthlyReport, lang: str) -> list[str]:
    s, zh = r.savings, lang == "zh"
    if s.verdict == "verified":
        return [f"经核证的节能量：{s.saved_kwh:,.0f} kWh，折合 {_money(s.saved_yuan, lang)}"
                f"（±{_money(s.uncertainty_yuan, lang)}，{100 * s.confidence:.0f}% 置信度），"
                f"占调整后基准的 {s.saved_pct:.1f}%。" if zh else
                f"Verified saving: {s.saved_kwh:,.0f} kWh, worth {_money(s.saved_yuan, lang)} "
                f"(±{_money(s.uncertainty_yuan, lang)} at {100 * s.confidence:.0f} % confidence), "
                f"{s.saved_pct:.1f} % of the adjusted baseline."]
    out = ["本月无法核证节能量：" if zh else "No saving can be verified this month:"]
    out += reasons(s, lang) or (["合同未约定基准。"] if zh else ["the contract sets no baseline."])
    if s.saved_yuan is not None and s.baseline_yuan_per_kwh is not None and s.actual_yuan_per_kwh is not None:
        out.append(f"仅供参考（未经核证）：本月平均单价 {s.actual_yuan_per_kwh:.4f} 元/kWh，基准单价 "
                   f"{s.baseline_yuan_per_kwh:.4f} 元/kWh，按本月电量折算差额 {_money(s.saved_yuan, lang)}。" if zh else
                   f"For reference only (not verified): unit cost {s.actual_yuan_per_kwh:.4f} yuan/kWh against a "
                   f"baseline of {s.baseline_yuan_per_kwh:.4f} yuan/kWh, a difference of "
                   f"{_money(s.saved_yuan, lang)} on this month's energy.")
    return out


def headline(r: MonthlyReport, lang: str) -> list[str]:
    """The first page in words: the bill, the saving and its status, the recommendations' worth."""
    zh = lang == "zh"
    out = []
    if r.partial:
        out.append(f"本月尚未结束：以下数字只含前 {r.days_covered:.1f} 天（共 {r.days_in_month:.0f} 天），"
                   "基本电费按天数折算。" if zh else
                   f"Month in progress: the figures cover the first {r.days_covered:.1f} of "
                   f"{r.days_in_month:.0f} days; the basic charge is pro-rated by days.")
    unit = r.bill_yuan / r.energy_kwh if r.energy_kwh > 0 else None
    out.append(f"用电 {r.energy_kwh:,.0f} kWh，电费 {_money(r.bill_yuan, lang)}"
               + (f"（平均 {unit:.4f} 元/kWh）。" if unit else "。") if zh else
               f"Energy {r.energy_kwh:,.0f} kWh, bill {_money(r.bill_yuan, lang)}"
               + (f" (average {unit:.4f} yuan/kWh)." if unit else "."))
    out += _saving_sentence(r, lang)
    if r.recommendations:
        top = r.recommendations[0]
        out.append(f"{len(r.recommendations)} 项节能建议合计约 {_money(r.recommended_yuan_month, lang)}/月，"
                   f"最大一项约 {_money(top.yuan_month or 0.0, lang)}/月（见“节能建议”，每项附计算过程）。" if zh else
                   f"{len(r.recommendations)} recommendation{'s are' if len(r.recommendations) > 1 else ' is'} worth about "
                   f"{_money(r.recommended_yuan_month, lang)}/month, the largest about "
                   f"{_money(top.yuan_month or 0.0, lang)}/month (see Recommendations, each with its calculation).")
    else:
        out.append("本月无新的节能建议。" if zh else "No new recommendation this month.")
    return out


def pq_texts(check: str, s: dict) -> dict[str, str]:
    """Limit and basis of one power-quality verdict in zh and en: what is counted, how many fail, the rule."""
    n, nout, ph = int(s["n_valid"]), int(s["n_outside"]), int(s.get("phases", 1))
    per = f"{n // ph:,}" if ph > 1 else f"{n:,}"
    count_zh = f"三相各 {per} 个 10 分钟值，共 {n:,} 个" if ph > 1 else f"{n:,} 个 10 分钟值"
    count_en = f"3 phases × {per} 10-min values = {n:,}" if ph > 1 else f"{n:,} 10-min values"
    if check == "voltage":
        lim = s.get("limit_pct", 7.0)
        limit = (f"标称电压 ±{lim:g}%", f"±{lim:g} % of nominal")
    elif check == "frequency":
        limit = (f"±{s.get('limit_hz', 0.2):g} 赫兹", f"±{s.get('limit_hz', 0.2):g} Hz")
        count_zh, count_en = f"{n:,} 个 10 分钟平均值（频率全系统统一，不分相）", f"{n:,} 10-min means (one frequency, not per phase)"
    elif check == "unbalance":
        limit = ("95% 概率值 ≤ 2%，最大值 ≤ 4%", "95 % probability value ≤ 2 %, maximum ≤ 4 %")
    else:
        lim = s.get("limit_pct")
        limit = (f"95% 概率值 ≤ {lim:g}%", f"95 % probability value ≤ {lim:g} %") if lim is not None else (
            str(s["limit"]), str(s["limit"]))
    if s.get("per_value"):
        rule = ("任一值越限即判为不合格", "any value outside the limit makes the month not compliant")
    else:
        rule = ("95% 概率值指舍去最大的 5% 后剩余值中的最大值" + ("，每 10 分钟取最严重相" if ph > 1 else ""),
                "the 95 % probability value is the largest value left after discarding the top 5 %"
                + ("; the worst phase of each 10 minutes" if ph > 1 else ""))
    return {"limit_zh": limit[0], "limit_en": limit[1],
            "basis_zh": f"{count_zh}，其中 {nout:,} 个越限；{rule[0]}。",
            "basis_en": f"{count_en}, {nout:,} outside the limit; {rule[1]}."}
