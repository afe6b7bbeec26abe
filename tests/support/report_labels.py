"""A made-up report month (no InfluxDB) for the label and wording tests of the monthly report."""

from __future__ import annotations

from core.units import NS
from reports.model import MonthlyReport, Recommendation, SiteMonth, SiteRegression, TouLine

FEB1 = 1_769_875_200 * NS - 8 * 3600 * NS          # 2026-02-01 00:00 Asia/Shanghai


def _report(days_covered: float = 28.0) -> MonthlyReport:
    s = SiteMonth(site_id="plant-1", site_name="一号厂", tariff="sichuan_large_industry_2023",
                  tariff_name="四川大工业 1-10 kV 分时电价", energy_kwh=100_000.0, energy_yuan=62_000.0,
                  basic_charge_yuan=36_000.0, basic_charge_method="capacity", bill_yuan=98_000.0,
                  tou=[TouLine("peak", 40_000.0, 38_400.0, 0.96), TouLine("valley", 60_000.0, 23_600.0, 0.3933)])
    r = MonthlyReport(customer_id="acme", customer_name="某某公司", month="2026-02", start_ns=FEB1,
                      end_ns=FEB1 + int(days_covered * 86400) * NS, generated_ns=FEB1, sites=[s],
                      days_in_month=28.0, days_covered=days_covered)
    r.recommendations = [Recommendation("saving_pf_correction", "plant-1", None, "加装补偿。", "Add capacitors.",
                                        0.0, 2200.0, "(2.00 % − (-0.75 %)) × 80,000.00 元/月 = 2,200.0 元/月",
                                        "(2.00 % − (-0.75 %)) × 80,000.00 yuan/month = 2,200.0 yuan/month")]
    return r


def _line(**kw) -> SiteRegression:
    x = SiteRegression(site_id="plant-1", baseline_start="2025-12-01", baseline_end="2025-12-28", n_baseline_days=28,
                       r2=0.9, cv_rmse_pct=6.0, nmbe_pct=0.0, meets_guideline14=True, m_days=28,
                       baseline_t_min_c=2.0, baseline_t_max_c=14.0, adjusted_baseline_kwh=110_000.0,
                       measured_kwh=100_000.0, savings_kwh=10_000.0, savings_pct=9.1, uncertainty_kwh=2_000.0,
                       uncertainty_68_kwh=1_200.0, price_yuan_per_kwh=0.62, savings_yuan=6_200.0,
                       uncertainty_yuan=1_240.0)
    for k, v in kw.items():
        setattr(x, k, v)
    return x
