"""Charts of the monthly report (matplotlib, Agg backend, CJK font set explicitly).

Each function returns PNG bytes; the HTML embeds them as data URIs so the same page
renders in a browser, in the PDF and in the e-mail attachment.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from reports.i18n import labels, period_label  # noqa: E402
from reports.model import SiteMonth, SiteRegression  # noqa: E402

#: Where Debian's ``fonts-noto-cjk`` puts the Sans CJK faces (override: EH_CJK_FONT).
CJK_FONT_CANDIDATES: tuple[str, ...] = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
)
CJK_FAMILY = "Noto Sans CJK SC"

PERIOD_COLOURS: dict[str, str] = {
    "critical": "#b2182b", "peak": "#ef8a62", "flat": "#67a9cf", "valley": "#2166ac",
    "deep_valley": "#053061",
}

_font_ready = False


def use_cjk_font() -> str:
    """Register the Noto CJK font with matplotlib and make it the default family.

    Returns the font file used.  Raises ``RuntimeError`` naming the package to install
    when no CJK font file exists: matplotlib would otherwise draw empty boxes for Chinese.
    """
    global _font_ready
    import os

    candidates = [os.environ["EH_CJK_FONT"]] if os.environ.get("EH_CJK_FONT") else list(CJK_FONT_CANDIDATES)
    for path in candidates:
        if Path(path).is_file():
            if not _font_ready:
                font_manager.fontManager.addfont(path)
                names = {f.name for f in font_manager.fontManager.ttflist if f.fname == path}
                family = CJK_FAMILY if CJK_FAMILY in names or not names else sorted(names)[0]
                matplotlib.rcParams["font.family"] = [family, "DejaVu Sans"]
                matplotlib.rcParams["axes.unicode_minus"] = False
                _font_ready = True
            return path
    raise RuntimeError(f"no CJK font found (tried {candidates}); install the Debian package "
                       "fonts-noto-cjk or set EH_CJK_FONT to a .ttc/.otf file")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _figure(lang: str, height: float) -> tuple[dict[str, str], Figure, Axes]:
    """Labels of ``lang`` and one 7.2-inch-wide axes, CJK font set."""
    use_cjk_font()
    fig, ax = plt.subplots(figsize=(7.2, height))
    return labels(lang), fig, ax


def _day_axes(ax: Axes, lab: dict[str, str], title: str, ylabel: str = "kWh", grid_axis: str = "y") -> None:
    """The frame every chart of the month shares: day of month along x, unit, title, grid."""
    ax.set_xlabel(lab["day"])
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis=grid_axis, alpha=0.3)


def daily_energy_chart(site: SiteMonth, lang: str) -> bytes:
    """Stacked bars: imported energy per day [kWh], one colour per TOU period."""
    lab, fig, ax = _figure(lang, 2.6)
    bottom: np.ndarray | None = None
    for period, values in site.daily_kwh.items():
        y = np.asarray(values, dtype=float)
        x = np.arange(1, len(y) + 1)
        ax.bar(x, y, bottom=bottom, color=PERIOD_COLOURS.get(period, "#999999"),
               label=period_label(period, lang), width=0.8)
        bottom = y if bottom is None else bottom + y
    _day_axes(ax, lab, f"{site.site_name} — {lab['chart_daily']}")
    if site.daily_kwh:
        ax.legend(fontsize=8, ncols=len(site.daily_kwh), loc="upper right")
    return _png(fig)


def demand_chart(site: SiteMonth, lang: str) -> bytes:
    """15-min block demand over the month [kW], with the billed (sliding-window) maximum marked."""
    lab, fig, ax = _figure(lang, 2.4)
    y = np.asarray(site.demand_kw, dtype=float)
    days = np.arange(len(y)) / 96.0 + 1.0     # 96 windows of 15 min per day
    ax.plot(days, y, lw=0.7, color="#2166ac")
    if site.max_demand_time_ns is not None and site.max_demand_kw > 0:
        # the billed maximum (sliding 15-min window) at the start of its window
        x = (site.max_demand_time_ns - site.demand_start_ns) / 86400e9 + 1.0
        ax.plot(x, site.max_demand_kw, "o", color="#b2182b")
        ax.annotate(f"{site.max_demand_kw:.0f} kW", (x, site.max_demand_kw), textcoords="offset points",
                    xytext=(6, -4), fontsize=8, color="#b2182b")
    _day_axes(ax, lab, f"{site.site_name} — {lab['chart_demand']}", ylabel="kW", grid_axis="both")
    return _png(fig)


def pv_chart(site: SiteMonth, lang: str) -> bytes:
    """Bars: PV generation per day and the self-consumed part [kWh]."""
    lab, fig, ax = _figure(lang, 2.4)
    gen = np.asarray(site.daily_pv_kwh, dtype=float)
    own = np.asarray(site.daily_pv_self_kwh, dtype=float)
    x = np.arange(1, len(gen) + 1)
    ax.bar(x, gen, color="#fdb863", width=0.8, label=lab["pv_generation"])
    if own.size == gen.size:
        ax.bar(x, own, color="#5e3c99", width=0.5, label=lab["pv_self"])
    _day_axes(ax, lab, f"{site.site_name} — {lab['chart_pv']}")
    ax.legend(fontsize=8, loc="upper right")
    return _png(fig)


def baseline_chart(reg: SiteRegression, site_name: str, lang: str) -> bytes:
    """Bars: measured energy per day; line: the adjusted baseline (the model on the day's conditions) [kWh].

    Days left out of the savings (incomplete data) have neither.
    """
    lab, fig, ax = _figure(lang, 2.4)
    meas = np.array([np.nan if v is None else v for v in reg.daily_measured_kwh], dtype=float)
    adj = np.array([np.nan if v is None else v for v in reg.daily_adjusted_kwh], dtype=float)
    x = np.arange(1, meas.size + 1)
    ax.bar(x, meas, color="#67a9cf", width=0.8, label=lab["reg_used"])
    ax.plot(x, adj, "o-", color="#b2182b", lw=1.2, ms=3, label=lab["reg_model"])
    _day_axes(ax, lab, f"{site_name} — {lab['chart_baseline']}")
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def site_charts(site: SiteMonth, lang: str) -> dict[str, bytes]:
    """The charts that apply to ``site`` (PV only when it has PV data)."""
    charts = {"daily": daily_energy_chart(site, lang), "demand": demand_chart(site, lang)}
    if site.daily_pv_kwh and any(v > 0 for v in site.daily_pv_kwh):
        charts["pv"] = pv_chart(site, lang)
    return charts
