"""Labels of the monthly report in Chinese (default for customers) and English."""

from __future__ import annotations

LANGS: tuple[str, ...] = ("zh", "en")

_LABELS: dict[str, dict[str, str]] = {
    "title": {"zh": "月度节能报告", "en": "Monthly energy saving report"},
    "customer": {"zh": "客户", "en": "Customer"},
    "month": {"zh": "月份", "en": "Month"},
    "generated": {"zh": "生成时间", "en": "Generated"},
    "summary": {"zh": "本月概要", "en": "Summary of the month"},
    "site": {"zh": "站点", "en": "Site"},
    "tariff": {"zh": "电价方案", "en": "Tariff"},
    "energy": {"zh": "用电量", "en": "Energy imported"},
    "export": {"zh": "上网电量", "en": "Energy exported"},
    "bill": {"zh": "电费合计", "en": "Electricity bill"},
    "energy_charge": {"zh": "电度电费", "en": "Energy charge"},
    "tou": {"zh": "分时电量与电费", "en": "Energy and cost by time-of-use period"},
    "period": {"zh": "时段", "en": "Period"},
    "price": {"zh": "电价", "en": "Price"},
    "cost": {"zh": "电费", "en": "Cost"},
    "total": {"zh": "合计", "en": "Total"},
    "critical": {"zh": "尖峰", "en": "Critical peak"},
    "peak": {"zh": "高峰", "en": "Peak"},
    "flat": {"zh": "平段", "en": "Flat"},
    "valley": {"zh": "低谷", "en": "Valley"},
    "deep_valley": {"zh": "深谷", "en": "Deep valley"},
    "demand": {"zh": "最大需量与基本电费", "en": "Maximum demand and basic charge"},
    "max_demand": {"zh": "最大需量(15分钟)", "en": "Maximum 15-min demand"},
    "at": {"zh": "出现时间", "en": "at"},
    "basic_charge": {"zh": "基本电费", "en": "Basic charge"},
    "method": {"zh": "计费方式", "en": "Billing method"},
    "method_demand": {"zh": "按需量", "en": "by demand"},
    "method_capacity": {"zh": "按容量", "en": "by capacity"},
    "method_": {"zh": "不计", "en": "not billed"},
    "pf": {"zh": "功率因数与力调电费", "en": "Power factor and adjustment charge"},
    "pf_month": {"zh": "月平均功率因数", "en": "Monthly average power factor"},
    "pf_standard": {"zh": "考核标准", "en": "Standard"},
    "pf_adjust": {"zh": "力调电费", "en": "PF adjustment"},
    "pv": {"zh": "光伏发电与自用", "en": "PV generation and self-consumption"},
    "pv_generation": {"zh": "光伏发电量", "en": "PV generation"},
    "pv_self": {"zh": "自发自用电量", "en": "Self-consumed"},
    "pv_self_pct": {"zh": "自用率", "en": "Self-consumption"},
    "pv_yield": {"zh": "等效利用小时", "en": "Specific yield"},
    "ev": {"zh": "电动汽车充电", "en": "EV charging"},
    "ev_energy": {"zh": "充电电量", "en": "Energy charged"},
    "ev_sessions": {"zh": "充电次数", "en": "Sessions"},
    "ev_cost": {"zh": "充电电费", "en": "Energy cost"},
    "ev_valley": {"zh": "低谷充电占比", "en": "Charged in valley hours"},
    "pq": {"zh": "电能质量", "en": "Power quality"},
    "check": {"zh": "指标", "en": "Check"},
    "device": {"zh": "设备", "en": "Device"},
    "value": {"zh": "数值", "en": "Value"},
    "limit": {"zh": "限值", "en": "Limit"},
    "statistic": {"zh": "统计量", "en": "Statistic"},
    "verdict": {"zh": "结论", "en": "Verdict"},
    "pass": {"zh": "合格", "en": "compliant"},
    "fail": {"zh": "不合格", "en": "not compliant"},
    "standard": {"zh": "依据", "en": "Standard"},
    "n_valid": {"zh": "10分钟值个数", "en": "10-min values"},
    "within": {"zh": "合格率", "en": "Within limit"},
    "pq_voltage": {"zh": "电压偏差", "en": "Voltage deviation"},
    "pq_frequency": {"zh": "频率偏差", "en": "Frequency deviation"},
    "pq_unbalance": {"zh": "三相电压不平衡", "en": "Voltage unbalance"},
    "pq_thd_voltage": {"zh": "电压总谐波畸变率", "en": "Voltage THD"},
    "workflow": {"zh": "告警与工单", "en": "Alarms and work orders"},
    "alarms_raised": {"zh": "产生告警", "en": "Alarms raised"},
    "alarms_cleared": {"zh": "已恢复告警", "en": "Alarms cleared"},
    "orders_opened": {"zh": "新建工单", "en": "Work orders opened"},
    "orders_closed": {"zh": "关闭工单", "en": "Work orders closed"},
    "orders_in_time": {"zh": "按时完成", "en": "Closed within time limits"},
    "orders_overdue": {"zh": "超时工单", "en": "Overdue orders"},
    "compliance": {"zh": "时限达标率", "en": "Time-limit compliance"},
    "no_workflow": {"zh": "未接入工单数据", "en": "Workflow data not available"},
    "recommendations": {"zh": "节能建议", "en": "Recommendations"},
    "per_month": {"zh": "元/月", "en": "yuan/month"},
    "no_recommendations": {"zh": "本月无新的节能建议", "en": "No new recommendation this month"},
    "savings": {"zh": "节能成效(对比基准)", "en": "Savings achieved against the baseline"},
    "baseline": {"zh": "基准", "en": "Baseline"},
    "baseline_configured": {"zh": "合同约定基准单价", "en": "contracted baseline unit cost"},
    "baseline_previous_months": {"zh": "前几个月平均单价", "en": "average unit cost of previous months"},
    "baseline_none": {"zh": "暂无基准数据", "en": "no baseline available"},
    "unit_cost": {"zh": "平均单价", "en": "Average unit cost"},
    "saved": {"zh": "节约电费", "en": "Saved"},
    "completeness": {"zh": "数据完整率", "en": "Data completeness"},
    "survey": {"zh": "满意度调查", "en": "Satisfaction survey"},
    "survey_text": {"zh": "请对本月服务进行评价:", "en": "Please rate our service this month:"},
    "chart_daily": {"zh": "每日分时用电量", "en": "Daily energy by TOU period"},
    "chart_demand": {"zh": "15分钟需量曲线", "en": "15-min demand"},
    "chart_pv": {"zh": "每日光伏发电与自用", "en": "Daily PV generation and self-consumption"},
    "day": {"zh": "日", "en": "Day"},
    "footer": {"zh": "本报告由 energyhost 能源托管服务自动生成。",
               "en": "This report was generated automatically by the energyhost energy hosting service."},
    "na": {"zh": "无", "en": "n/a"},
}


def labels(lang: str) -> dict[str, str]:
    """All labels in ``lang`` (``zh`` or ``en``)."""
    if lang not in LANGS:
        raise ValueError(f"unknown report language {lang!r}; expected one of {LANGS}")
    return {key: text[lang] for key, text in _LABELS.items()}


def period_label(period: str, lang: str) -> str:
    """Name of a TOU period in ``lang``; an unknown period name is shown as is."""
    entry = _LABELS.get(period)
    return entry[lang] if entry else period
