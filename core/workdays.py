"""China's working-day calendar: weekends, public holidays and make-up working days (调休).

The official arrangement is published each year by the General Office of the State Council
(国务院办公厅关于…部分节假日安排的通知).  The years it covers come from the ``chinesecalendar``
package (``chinese_calendar``, 2004 up to its release); later years fall back to
:data:`APPROX_HOLIDAYS` (expected festival dates, no make-up days) and :func:`source` says so.

Used by the simulators (the load follows the calendar) and by the monthly report (the
baseline model's day types), so both see the same days.
"""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar

#: Day types of the baseline model (analytics.baseline): ordinary working day, rest Saturday,
#: Sunday or public holiday.  A make-up working day (调休) on a weekend is a working day.
WORKING, SATURDAY, REST = 0, 1, 2

#: Expected public holidays for years the package does not cover yet (no make-up working days; the
#: lunar festivals other than the Spring Festival are left out until the arrangement is published).
APPROX_HOLIDAYS: tuple[tuple[str, str], ...] = (
    ("2027-01-01", "2027-01-03"), ("2027-02-06", "2027-02-12"), ("2027-05-01", "2027-05-05"),
    ("2027-10-01", "2027-10-07"),
)


def _approx() -> frozenset[date]:
    out: set[date] = set()
    for a, b in APPROX_HOLIDAYS:
        d0, d1 = date.fromisoformat(a), date.fromisoformat(b)
        out.update(d0 + timedelta(days=i) for i in range((d1 - d0).days + 1))
    return frozenset(out)


_APPROX = _approx()


def covered(d: date) -> bool:
    """True when the official arrangement of ``d``'s year is known (``chinesecalendar`` data)."""
    try:
        chinese_calendar.is_workday(d)
        return True
    except NotImplementedError:
        return False


def source(d: date) -> str:
    """Where the day type of ``d`` comes from: ``official`` or ``approximate``."""
    return "official" if covered(d) else "approximate"


def is_holiday(d: date) -> bool:
    """A day off of a public-holiday arrangement (法定节假日 and the weekend days it spans)."""
    if covered(d):
        return d in chinese_calendar.holidays
    return d in _APPROX


def is_workday(d: date) -> bool:
    """A working day: Monday-Friday not a holiday, or a make-up working day on a weekend."""
    try:
        return bool(chinese_calendar.is_workday(d))
    except NotImplementedError:
        return d.weekday() < 5 and d not in _APPROX


def day_type(d: date) -> int:
    """:data:`WORKING`, :data:`SATURDAY` (a Saturday off that is no holiday) or :data:`REST`."""
    if is_workday(d):
        return WORKING
    if d.weekday() == 5 and not is_holiday(d):
        return SATURDAY
    return REST
