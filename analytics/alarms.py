"""Findings → alarms: dedup keys, raise/clear times, suppression by design, chattering, flood KPIs.

Pure functions: no clock, no storage.  The workflow store (``workflow.Store.upsert_alarm_events``)
persists what :func:`findings_to_events` returns; re-sending the same events is idempotent
there because an activation is identified by ``(key, raised_ns)``.

Alarm philosophy (ISA-18.2 / IEC 62682, EEMUA 191; docs/standards.md §10.2):

* one alarm per dedup key ``site/device/type`` at a time; overlapping or nearly
  adjacent findings of one key merge into one activation (an off-delay, so a
  condition that flickers does not chatter);
* a device's ``comms_loss`` suppresses its process alarms *by design* (they are still
  evaluated and logged, with ``suppressed_by`` = the comms alarm's key), and when every
  device behind one gateway is silent together, one gateway alarm suppresses the
  device comms alarms — one alarm, not fifty;
* chattering = ≥ 3 activations of a key within 60 s; flood = > 10 alarms in 10 min,
  ending when fewer than 5 arrive in 10 min.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

import numpy as np

from core.model import SEVERITIES, AlarmEvent, Finding
from core.units import NS

COMMS_TYPE = "comms_loss"
DROPPED_TYPE = "readings_dropped"
TEN_MIN_NS = 600 * NS


def alarm_key(site_id: str, device_id: str | None, type_: str) -> str:
    """Dedup key ``site/device/type`` (``-`` for a site-level alarm)."""
    if not site_id or "/" in site_id or (device_id and "/" in device_id) or not type_ or "/" in type_:
        raise ValueError(f"site_id, device_id and type must be non-empty and free of '/': "
                         f"{site_id!r}, {device_id!r}, {type_!r}")
    return f"{site_id}/{device_id or '-'}/{type_}"


def readings_dropped_findings(site_id: str, health: Mapping[str, Mapping[str, np.ndarray]]) -> list[Finding]:
    """Critical site-level findings for readings the collector's spool cap dropped.

    ``health`` is device id → ``{"time_ns", "dropped_points"}`` of the ``ingest_health`` points the
    :class:`core.influx.Writer` records (one per device and recording, stamped when recorded).
    One finding per recording time, naming every device and its count; a lost reading is never
    process data, so it is not suppressed by a comms-loss alarm.
    """
    by_time: dict[int, dict[str, int]] = defaultdict(dict)
    for device, cols in health.items():
        for t, n in zip(np.asarray(cols.get("time_ns", ())), np.asarray(cols.get("dropped_points", ())),
                        strict=True):
            if np.isfinite(n) and n > 0:
                by_time[int(t)][device] = by_time[int(t)].get(device, 0) + int(n)
    out = []
    for t, devices in sorted(by_time.items()):
        total = sum(devices.values())
        names = ", ".join(f"{d} ({n})" for d, n in sorted(devices.items()))
        out.append(Finding(
            type=DROPPED_TYPE, site_id=site_id, device_id=None, start_ns=t, end_ns=t, severity="critical",
            evidence={"dropped_points": total, "devices": dict(sorted(devices.items()))},
            explanation_zh=f"采集器磁盘缓存（spool）已满，按策略丢弃了最旧的 {total} 条读数：{names}。数据已永久缺失。",
            explanation_en=f"Readings dropped by the spool cap: the collector's disk spool was full and its drop "
                           f"policy discarded the {total} oldest readings ({names}); that data is lost.",
            recommendation_zh="检查 InfluxDB 为何长时间不可写，并按 reliability.md §4 调大 EH_SPOOL_MAX_BYTES。",
            recommendation_en="Find why InfluxDB was not writable for so long; size EH_SPOOL_MAX_BYTES for the "
                              "outage to ride out (reliability.md §4)."))
    return out


def _merge(intervals: list[tuple[int, int, Finding]], gap_ns: int) -> list[tuple[int, int, list[Finding]]]:
    intervals.sort(key=lambda x: (x[0], x[1]))
    out: list[tuple[int, int, list[Finding]]] = []
    for s, e, f in intervals:
        if out and s <= out[-1][1] + gap_ns:
            ps, pe, fs = out[-1]
            out[-1] = (ps, max(pe, e), [*fs, f])
        else:
            out.append((s, e, [f]))
    return out


def _overlap(a0: int, a1: int | None, b0: int, b1: int | None) -> bool:
    inf = np.iinfo(np.int64).max
    return a0 <= (b1 if b1 is not None else inf) and b0 <= (a1 if a1 is not None else inf)


def findings_to_events(findings: Iterable[Finding], now_ns: int | None = None,
                       merge_gap_s: float | Mapping[str | None, float] = 120.0,
                       groups: Mapping[str, Iterable[str]] | None = None,
                       exclude_types: Iterable[str] = ()) -> list[AlarmEvent]:
    """Turn fault findings into alarm activations (raise, and clear when the condition ended).

    Parameters
    ----------
    findings : iterable of Finding
        Fault findings (``saving_*`` findings are advice, never alarms, and are skipped).
    now_ns : int, optional
        Evaluation time [ns]: an activation whose last finding ends at or after
        ``now_ns - merge_gap_s`` is still active (``cleared_ns`` None).  None = all cleared
        at their end.
    merge_gap_s : float or mapping
        Findings of one key closer than this merge into one activation (off-delay) [s]; a mapping
        gives it per device id (its own poll interval sets it), with ``None`` as the default for
        site-level findings and devices not listed.
    groups : mapping, optional
        ``{gateway_id: device ids behind it}`` — when all of them lose comms together a
        single ``site/gateway/comms_loss`` alarm suppresses theirs.
    exclude_types : iterable of str
        Finding types that are not alarms (e.g. power-quality statistics).

    Returns
    -------
    list of AlarmEvent
        Sorted by raise time; at most one activation per key at any time.
    """
    gaps = merge_gap_s if isinstance(merge_gap_s, Mapping) else {None: merge_gap_s}
    default_gap = gaps.get(None, 120.0)
    skip = set(exclude_types)
    by_key: dict[str, list[tuple[int, int, Finding]]] = defaultdict(list)
    for f in findings:
        if f.type.startswith("saving_") or f.type in skip:
            continue
        if f.severity not in SEVERITIES:
            raise ValueError(f"finding {f.type!r} of {f.site_id}/{f.device_id}: severity must be one of "
                             f"{SEVERITIES}, got {f.severity!r}")
        if f.end_ns < f.start_ns:
            raise ValueError(f"finding {f.type!r} of {f.site_id}/{f.device_id}: end_ns before start_ns")
        by_key[alarm_key(f.site_id, f.device_id, f.type)].append((f.start_ns, f.end_ns, f))
    events: list[AlarmEvent] = []
    for key, items in by_key.items():
        gap = round(gaps.get(items[0][2].device_id, default_gap) * NS)
        for s, e, fs in _merge(items, gap):
            worst = min(fs, key=lambda f: SEVERITIES.index(f.severity))
            active = now_ns is not None and e >= now_ns - gap
            ev = dict(worst.evidence)
            if len(fs) > 1:
                ev["merged_findings"] = len(fs)
            events.append(AlarmEvent(key=key, type=worst.type, site_id=worst.site_id, device_id=worst.device_id,
                                     severity=worst.severity, raised_ns=int(s), cleared_ns=None if active else int(e),
                                     message_zh=worst.explanation_zh, message_en=worst.explanation_en,
                                     evidence=ev))
    events = _gateway_comms(events, groups or {})
    events = _suppress_by_comms(events)
    events.sort(key=lambda a: (a.raised_ns, a.key))
    return events


def _gateway_comms(events: list[AlarmEvent], groups: Mapping[str, Iterable[str]]) -> list[AlarmEvent]:
    """Add one gateway comms alarm where every device behind a gateway is silent at once."""
    comms = [e for e in events if e.type == COMMS_TYPE and e.device_id]
    extra: list[AlarmEvent] = []
    for gw, members in groups.items():
        members = set(members)
        if len(members) < 2:
            continue
        mine = [e for e in comms if e.device_id in members]
        for e in [e for e in mine if e.device_id == min(members)]:
            # the common window of all members overlapping this activation
            start, end = e.raised_ns, e.cleared_ns
            ok = True
            for d in members:
                hit = [o for o in mine if o.device_id == d and _overlap(o.raised_ns, o.cleared_ns, start, end)]
                if not hit:
                    ok = False
                    break
                start = max(start, min(o.raised_ns for o in hit))
                ends = [o.cleared_ns for o in hit]
                end_d = None if any(x is None for x in ends) else max(ends)
                end = end_d if end is None else (end if end_d is None else min(end, end_d))
            if ok and (end is None or end >= start):
                extra.append(AlarmEvent(
                    key=alarm_key(e.site_id, gw, COMMS_TYPE), type=COMMS_TYPE, site_id=e.site_id, device_id=gw,
                    severity="major", raised_ns=start, cleared_ns=end,
                    message_zh=f"网关 {gw} 下全部 {len(members)} 台设备通信中断。",
                    message_en=f"All {len(members)} devices behind gateway {gw} lost communication.",
                    evidence={"devices": sorted(members)}))
    if not extra:
        return events
    out = []
    for e in events:
        if e.type == COMMS_TYPE and e.device_id and e.suppressed_by is None:
            sup = next((g.key for g in extra if e.device_id in set(groups.get(g.device_id, ()))
                        and _overlap(g.raised_ns, g.cleared_ns, e.raised_ns, e.cleared_ns)), None)
            e = e._replace(suppressed_by=sup)
        out.append(e)
    return out + extra


def _suppress_by_comms(events: list[AlarmEvent]) -> list[AlarmEvent]:
    """Process alarms of a device raised while its comms alarm is active are suppressed by design."""
    comms: dict[tuple[str, str | None], list[AlarmEvent]] = defaultdict(list)
    for e in events:
        if e.type == COMMS_TYPE:
            comms[(e.site_id, e.device_id)].append(e)
    out = []
    for e in events:
        if e.type != COMMS_TYPE and e.suppressed_by is None:
            c = next((c for c in comms.get((e.site_id, e.device_id), ())
                      if c.raised_ns <= e.raised_ns and (c.cleared_ns is None or e.raised_ns <= c.cleared_ns)),
                     None)
            if c is not None:
                e = e._replace(suppressed_by=c.suppressed_by or c.key)
        out.append(e)
    return out


def chattering(events: Iterable[AlarmEvent], window_s: float = 60.0, count: int = 3) -> dict[str, int]:
    """Keys with at least ``count`` activations within any ``window_s`` (PAS: ≥ 3 in 60 s).

    Returns
    -------
    dict
        key → the largest number of activations seen in one window.
    """
    w = round(window_s * NS)
    raises: dict[str, list[int]] = defaultdict(list)
    for e in events:
        raises[e.key].append(e.raised_ns)
    out = {}
    for key, ts in raises.items():
        t = np.sort(np.asarray(ts, np.int64))
        n = np.searchsorted(t, t + w, side="right") - np.arange(t.size)
        if n.size and n.max() >= count:
            out[key] = int(n.max())
    return out


def alarm_kpis(events: Iterable[AlarmEvent], start_ns: int, end_ns: int, operators: int = 1) -> dict:
    """Alarm-system performance figures per ISA-18.2 §16 / EEMUA 191 (docs/standards.md §10.2).

    Counts annunciated activations (suppressed-by-design ones are reported separately)
    raised within ``[start_ns, end_ns)``.

    Returns
    -------
    dict
        ``annunciated``, ``suppressed``, ``per_hour``, ``per_day`` (per operator),
        ``max_per_10min``, ``flood_periods_pct`` (10-min periods with > 10),
        ``time_in_flood_pct`` (flood starts > 10 / 10 min, ends < 5 / 10 min),
        ``priority_pct``, ``top10_share_pct``, ``chattering_keys``, ``stale`` (active ≥ 24 h
        at ``end_ns``), ``verdict`` (acceptable / manageable / overloaded).
    """
    if end_ns <= start_ns:
        raise ValueError(f"end_ns must be > start_ns, got {start_ns}..{end_ns}")
    if operators < 1:
        raise ValueError(f"operators must be ≥ 1, got {operators}")
    evs = [e for e in events if start_ns <= e.raised_ns < end_ns]
    ann = [e for e in evs if e.suppressed_by is None]
    hours = (end_ns - start_ns) / 3600e9
    nb = int(np.ceil((end_ns - start_ns) / TEN_MIN_NS))
    buckets = np.bincount([(e.raised_ns - start_ns) // TEN_MIN_NS for e in ann], minlength=nb)[:nb] / operators
    flood = np.zeros(nb, bool)
    state = False
    for i, c in enumerate(buckets):
        state = c > 10 if not state else not c < 5
        flood[i] = state
    by_key = Counter(e.key for e in ann)
    top10 = sum(c for _, c in by_key.most_common(10))
    prio = Counter(e.severity for e in ann)
    per_hour = len(ann) / hours / operators
    per_10 = buckets.max() if nb else 0
    verdict = ("acceptable" if per_hour <= 6 and per_10 <= 10 else
               "manageable" if per_hour <= 12 else "overloaded")
    stale = [e.key for e in evs if e.cleared_ns is None and end_ns - e.raised_ns >= 24 * 3600 * NS]
    return {
        "annunciated": len(ann), "suppressed": len(evs) - len(ann), "per_hour": round(per_hour, 3),
        "per_day": round(per_hour * 24, 2), "max_per_10min": int(per_10),
        "flood_periods_pct": round(float(np.mean(buckets > 10)) * 100, 3) if nb else 0.0,
        "time_in_flood_pct": round(float(flood.mean()) * 100, 3) if nb else 0.0,
        "priority_pct": {s: round(prio.get(s, 0) / len(ann) * 100, 1) if ann else 0.0 for s in SEVERITIES},
        "top10_share_pct": round(top10 / len(ann) * 100, 1) if ann else 0.0,
        "chattering_keys": chattering(ann), "stale": stale, "verdict": verdict,
    }


EVIDENCE_DEADBAND = 0.02        # relative change of a measured value that is worth re-sending an open alarm
EVIDENCE_MIN_INTERVAL_S = 60.0  # … at most this often per alarm (its severity and suppression go at once)


def evidence_moved(old: Mapping, new: Mapping, deadband: float = EVIDENCE_DEADBAND) -> bool:
    """Did the evidence change materially: a number by more than ``deadband`` of its size, or anything else?"""
    for k in set(old) | set(new):
        if k == "merged_findings":
            continue
        a, b = old.get(k), new.get(k)
        num = (int, float, np.integer, np.floating)
        if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool) and not isinstance(b, bool):
            if abs(float(a) - float(b)) > deadband * max(abs(float(a)), abs(float(b))):
                return True
        elif a != b:
            return True
    return False


def reconcile(open_alarms: Mapping[str, AlarmEvent], events: Iterable[AlarmEvent], now_ns: int,
              last_cleared: Mapping[str, int] | None = None, *, last_sent: dict[str, int] | None = None,
              deadband: float = EVIDENCE_DEADBAND, min_interval_s: float = EVIDENCE_MIN_INTERVAL_S
              ) -> tuple[list[AlarmEvent], dict[str, AlarmEvent], dict[str, int]]:
    """Continuous evaluation over a sliding window: what to send to the store, and what stays open.

    A window that starts after a condition began clamps its raise time, so the raw events of
    successive evaluations disagree on ``raised_ns``.  This keeps the first raise time of an
    open alarm, sends a raise once, sends a clear once (with the original raise time), and
    never resends an activation that was already cleared.

    Parameters
    ----------
    open_alarms : mapping
        key → the raise event sent earlier and not yet cleared.
    events : iterable of AlarmEvent
        Output of :func:`findings_to_events` for the current window (with ``now_ns``).
    now_ns : int
        Evaluation time [ns]; an open alarm no longer seen at all clears at ``now_ns``.
    last_cleared : mapping, optional
        key → clear time of the last activation sent as cleared.
    last_sent : dict, optional
        key → when the open alarm was last sent [ns], updated in place.  An open alarm whose evidence
        moved (:func:`evidence_moved`, ``deadband``) is re-sent with it, at most every ``min_interval_s``
        when this record is kept (at once without it), so the console shows the present measurement.

    Returns
    -------
    to_send : list of AlarmEvent
        Raises and clears to upsert, in time order.
    open_alarms : dict
        Updated open alarms.
    last_cleared : dict
        Updated clear times.
    """
    still = dict(open_alarms)
    done = dict(last_cleared or {})
    send: list[AlarmEvent] = []
    seen: set[str] = set()
    sent = last_sent if last_sent is not None else {}
    gap = round(min_interval_s * NS)
    for e in sorted(events, key=lambda a: (a.raised_ns, a.key)):
        seen.add(e.key)
        if e.cleared_ns is None:
            due = now_ns - sent.get(e.key, now_ns - gap) >= gap      # an evidence update may be sent now
            _reconcile_open(e, still, done, send, due, deadband)
        else:
            _reconcile_cleared(e, still, done, send)
    for key in [k for k in still if k not in seen]:
        send.append(still.pop(key)._replace(cleared_ns=now_ns))
        done[key] = now_ns
    send.sort(key=lambda a: (a.cleared_ns if a.cleared_ns is not None else a.raised_ns, a.key))
    for e in send:
        if e.cleared_ns is None:
            sent[e.key] = now_ns
        else:
            sent.pop(e.key, None)
    return send, still, done


def _reconcile_open(e: AlarmEvent, still: dict[str, AlarmEvent], done: Mapping[str, int], send: list[AlarmEvent],
                    evidence_due: bool, deadband: float) -> None:
    """An event still active: a new raise (after the last clear of its key), or an update of the open
    alarm when its suppression or severity changed, or (when ``evidence_due``) its evidence moved."""
    prev = still.get(e.key)
    if prev is None:
        if e.raised_ns <= done.get(e.key, -1):
            e = e._replace(raised_ns=done[e.key] + 1)
        still[e.key] = e
        send.append(e)
    elif (e.suppressed_by != prev.suppressed_by or e.severity != prev.severity
          or (evidence_due and evidence_moved(prev.evidence, e.evidence, deadband))):
        still[e.key] = prev._replace(suppressed_by=e.suppressed_by, severity=e.severity,
                                     evidence=e.evidence, message_zh=e.message_zh, message_en=e.message_en)
        send.append(still[e.key])


def _reconcile_cleared(e: AlarmEvent, still: dict[str, AlarmEvent], done: dict[str, int],
                       send: list[AlarmEvent]) -> None:
    """An event that has ended: clears the open alarm of its key once, or is sent whole if new."""
    prev = still.get(e.key)
    if prev is not None and e.cleared_ns >= prev.raised_ns:
        send.append(prev._replace(cleared_ns=e.cleared_ns))
        done[e.key] = e.cleared_ns
        del still[e.key]
    elif prev is None and e.cleared_ns > done.get(e.key, -1) and e.raised_ns > done.get(e.key, -1):
        send.append(e)
        done[e.key] = e.cleared_ns
