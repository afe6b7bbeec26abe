"""The figures of one monthly saving report, in one place.

Every number printed in the HTML/PDF report, shown in the charts or sent by e-mail comes
from a :class:`MonthlyReport`; tests compare its fields with the analytics functions'
own results.  Units are in the field names' comments and in ``docs/reports.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class TouLine:
    """Energy and cost of one time-of-use period in the month."""

    period: str                 # tariff period name: "critical", "peak", "flat", "valley", ...
    kwh: float                  # imported active energy [kWh]
    yuan: float                 # energy charge [yuan]
    price: float                # price of the period [yuan/kWh] (cost / energy when it varies)


@dataclass
class PowerQualityLine:
    """One power-quality parameter of one meter over the month (analytics.power_quality.compliance_summary)."""

    check: str                  # "voltage", "frequency", "unbalance", "thd_voltage"
    device_id: str
    n_valid: int                # valid 10-min values assessed
    n_outside: int              # of which outside the limit
    compliance_pct: float | None   # share of valid 10-min values within the limit [%]
    statistic: str              # name of ``value``: "p95", "max", "qualification rate", ...
    value: float | None
    unit: str
    limit: str                  # limit as the standard states it
    standard: str               # standard and clause
    compliant: bool | None      # None: no valid 10-min value in the month (no data, not a verdict)
    limit_zh: str = ""          # the limit, and what was counted and how the verdict is reached
    limit_en: str = ""
    basis_zh: str = ""
    basis_en: str = ""


@dataclass
class SiteMonth:
    """The month of one site: energy, demand, power factor, PV, EV, PQ, data completeness."""

    site_id: str
    site_name: str
    tariff: str                             # tariff id (file name)
    tariff_name: str = ""                   # its name as the customer knows it
    tariff_example: bool = False            # example prices / another province's schedule (fleet accepted it)
    tou: list[TouLine] = field(default_factory=list)
    energy_kwh: float = 0.0                 # grid import [kWh]
    export_kwh: float = 0.0                 # grid export [kWh]
    reactive_kvarh: float = 0.0             # |inductive| + |capacitive| reactive energy [kvarh]
    energy_yuan: float = 0.0                # energy charge [yuan]
    max_demand_kw: float = 0.0              # highest 15-min demand [kW]
    max_demand_time_ns: int | None = None   # start of that 15-min window [ns]
    basic_charge_yuan: float = 0.0          # basic (capacity/demand) charge [yuan]
    basic_charge_method: str = ""           # "demand" / "capacity" / "" (not billed)
    power_factor: float | None = None       # monthly average PF, rounded half-up to 2 dp
    pf_standard: float = 0.90
    pf_adjustment_pct: float = 0.0          # + = surcharge, - = rebate [%]
    pf_adjustment_yuan: float = 0.0         # [yuan]
    bill_yuan: float = 0.0                  # energy + basic + PF adjustment [yuan]
    register_kwh: float | None = None       # import from the billing meters' energy registers [kWh]
    register_diff_pct: float | None = None  # (integrated - register) / register [%]
    register_events: dict[str, int] = field(default_factory=dict)  # reset / replacement / rollover / spike
    pv_generation_kwh: float = 0.0
    pv_self_consumed_kwh: float = 0.0
    pv_self_consumption_pct: float | None = None
    pv_yield_kwh_per_kwp: float | None = None
    ev_energy_kwh: float = 0.0
    ev_sessions: int = 0
    ev_cost_yuan: float = 0.0               # energy cost of charging at the TOU price [yuan]
    ev_valley_share_pct: float | None = None
    pq: list[PowerQualityLine] = field(default_factory=list)
    completeness_pct: float = 0.0           # % of expected samples present, all devices of the site
    device_completeness_pct: dict[str, float] = field(default_factory=dict)
    daily_kwh: dict[str, list[float]] = field(default_factory=dict)   # period -> kWh per day of month
    daily_pv_kwh: list[float] = field(default_factory=list)
    daily_pv_self_kwh: list[float] = field(default_factory=list)
    demand_kw: list[float] = field(default_factory=list)             # 15-min demand series [kW]
    demand_start_ns: int = 0
    ageing: list[TransformerMonth] = field(default_factory=list)      # per transformer


@dataclass
class TransformerMonth:
    """Insulation life of one transformer consumed in the month (IEC 60076-7/-12, see docs/analytics.md)."""

    transformer: str
    basis: str                          # "windings" (temperature controller) or "load" (thermal model)
    insulation: str                     # "dry" / "oil"
    covered_days: float                 # time with a valid ageing rate [d]
    days_consumed: float                # equivalent days of design life used [d]
    mean_rate: float | None             # days_consumed / covered_days
    peak_hot_spot_c: float | None
    design_life_days: float
    share_of_life_pct: float            # days_consumed / design life [%]


@dataclass
class Recommendation:
    """A priced saving opportunity (from :mod:`analytics.savings`)."""

    type: str
    site_id: str
    device_id: str | None
    text_zh: str
    text_en: str
    kwh_month: float | None
    yuan_month: float | None
    calculation_zh: str = ""                  # the sum behind yuan_month, from the finding's evidence
    calculation_en: str = ""


@dataclass
class WorkflowSummary:
    """Alarms and work orders of the month, with time-limit compliance."""

    alarms_raised: int = 0
    alarms_cleared: int = 0
    alarms_by_severity: dict[str, int] = field(default_factory=dict)
    orders_opened: int = 0
    orders_closed: int = 0
    orders_in_time: int = 0                  # closed within every time limit
    orders_overdue: int = 0                  # open or closed, at least one limit missed
    time_limit_compliance_pct: float | None = None
    surveys: int = 0                         # satisfaction answers given in the month
    survey_mean_rating: float | None = None  # their mean rating (1..5)
    available: bool = True                   # False when no workflow store was given


@dataclass
class SiteRegression:
    """One site's IPMVP Option C verified savings (analytics.baseline), see docs/reports.md."""

    site_id: str
    baseline_start: str                       # first and last local day of the baseline period (ISO)
    baseline_end: str
    error: str = ""                           # why there is no model or no savings ("" = computed)
    calendar: str = ""                        # day types from the "official" or "approximate" calendar
    n_baseline_days: int = 0                  # baseline days used
    n_baseline_excluded: int = 0              # baseline days left out (incomplete data)
    terms: list[str] = field(default_factory=list)
    coefficients: dict[str, float] = field(default_factory=dict)   # kWh/day, kWh/(K·day)
    baseline_t_min_c: float | None = None     # daily mean temperatures seen in the baseline [°C]
    baseline_t_max_c: float | None = None
    r2: float | None = None
    cv_rmse_pct: float | None = None          # ASHRAE Guideline 14, n - p degrees of freedom
    nmbe_pct: float | None = None
    rho: float | None = None                  # lag-1 autocorrelation of the baseline residuals
    meets_guideline14: bool = False           # CV(RMSE) <= 20 % and |NMBE| <= 0.005 %
    m_days: int = 0                           # reporting days used
    n_excluded_days: int = 0                  # reporting days left out (incomplete data)
    n_extrapolated_days: int = 0              # used days colder/warmer than any baseline day
    adjusted_baseline_kwh: float | None = None
    measured_kwh: float | None = None
    savings_kwh: float | None = None          # adjusted baseline - measured
    savings_pct: float | None = None
    confidence: float = 0.90
    uncertainty_kwh: float | None = None      # half-width of the band at ``confidence``
    uncertainty_68_kwh: float | None = None   # the same at 68 % (Guideline 14 precision test)
    price_yuan_per_kwh: float | None = None   # the month's average energy price of the site
    savings_yuan: float | None = None
    uncertainty_yuan: float | None = None
    daily_adjusted_kwh: list[float | None] = field(default_factory=list)   # per day of month, None = not used
    daily_measured_kwh: list[float | None] = field(default_factory=list)
    temperature_source: str = ""              # outdoor temperature of the month: station:<device>, feed:<file>,
    baseline_temperature_source: str = ""     # weather or none (reports.weather); the same for the baseline days
    n_no_temperature_days: int = 0            # reporting days with < 20 h of outdoor temperature: not compared
    n_baseline_no_temperature_days: int = 0   # the same among the baseline days


@dataclass
class Savings:
    """Savings achieved against the customer's baseline (see docs/reports.md, "Baseline").

    ``method = "regression"``: IPMVP Option C, adjusted baseline − measured, summed over the
    sites (:class:`SiteRegression`), priced at each site's average energy price, with the
    ASHRAE Guideline 14 uncertainty (site bands added in quadrature).  Otherwise
    ``saved_yuan = (baseline_yuan_per_kwh - actual_yuan_per_kwh) * actual_kwh``: the unit
    cost is compared so a month with more production is not counted as a loss.
    """

    method: str                               # "regression" / "configured" / "previous_months" / "none"
    baseline_yuan_per_kwh: float | None = None
    baseline_kwh: float | None = None
    baseline_months: list[str] = field(default_factory=list)
    actual_yuan_per_kwh: float | None = None
    actual_kwh: float = 0.0
    saved_yuan: float | None = None
    saved_pct: float | None = None
    # regression (IPMVP Option C) -- filled whenever the contract names a baseline period
    regression_status: str = ""               # "" (no period) / "verified" / "uncertain" / "model_failed"
    regression: list[SiteRegression] = field(default_factory=list)
    saved_kwh: float | None = None            # avoided energy, all sites [kWh]
    uncertainty_kwh: float | None = None      # its band at ``confidence`` [kWh]
    uncertainty_yuan: float | None = None
    confidence: float | None = None
    fsu_68_pct: float | None = None           # 68 % band / |saved_kwh| [%] (Guideline 14: <= 50 %)
    # the one word the customer reads: "verified" only within IPMVP / Guideline 14 limits
    verdict: str = "no_baseline"              # "verified" / "not_verifiable" / "no_baseline"
    reasons: list[dict] = field(default_factory=list)   # why not verifiable: {"code": ..., values}


@dataclass
class MonthlyReport:
    """All figures of the monthly saving report of one customer."""

    customer_id: str
    customer_name: str
    month: str                                # "YYYY-MM" (local calendar month of the sites)
    start_ns: int
    end_ns: int
    generated_ns: int
    sites: list[SiteMonth] = field(default_factory=list)
    workflow: WorkflowSummary = field(default_factory=WorkflowSummary)
    recommendations: list[Recommendation] = field(default_factory=list)
    savings: Savings = field(default_factory=lambda: Savings(method="none"))
    survey_url: str = ""
    commitments: dict = field(default_factory=dict)   # {"contract", "rows"}: reports.commitments.report_scorecard
    days_in_month: float = 0.0                # local calendar days of the month
    days_covered: float = 0.0                 # days analysed: less than the month while it is in progress

    @property
    def partial(self) -> bool:
        """The month is still in progress: figures cover ``days_covered`` days, charges pro-rated."""
        return self.days_covered < self.days_in_month - 1e-6

    @property
    def energy_kwh(self) -> float:
        return sum(s.energy_kwh for s in self.sites)

    @property
    def bill_yuan(self) -> float:
        return sum(s.bill_yuan for s in self.sites)

    @property
    def pv_generation_kwh(self) -> float:
        return sum(s.pv_generation_kwh for s in self.sites)

    @property
    def recommended_yuan_month(self) -> float:
        return sum(r.yuan_month or 0.0 for r in self.recommendations)

    @property
    def completeness_pct(self) -> float:
        if not self.sites:
            return 0.0
        return sum(s.completeness_pct for s in self.sites) / len(self.sites)

    def to_dict(self) -> dict:
        """Plain-JSON form (what ``report.json`` holds and the API returns)."""
        d = asdict(self)
        d.update(energy_kwh=self.energy_kwh, bill_yuan=self.bill_yuan,
                 pv_generation_kwh=self.pv_generation_kwh,
                 recommended_yuan_month=self.recommended_yuan_month,
                 completeness_pct=self.completeness_pct, partial=self.partial)
        return d
