"""analytics.jobs against a real influxd: period evaluation, live following, alarms into the workflow store.

Data: the simulator's signal model (simulators.signals) for one site, written as line protocol
in the storage schema (measurement = kind, tags customer/site/device, collector_status with
online 0 where a comms fault leaves a gap) — the same shape the collectors and the backfill write.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from analytics import assess, jobs
from core.config import load_fleet
from core.influx import InfluxClient, points_to_lines
from core.model import Point
from core.units import NS
from simulators.signals import FleetSignals

pytestmark = pytest.mark.integration

H = 3600
T0 = 1772409600 - 8 * H              # 2026-03-02T00:00 local (Monday)
SITE = "acme-office"
FAULTS = [("acme-office-ev1", "ev_fault", T0 + 9 * H, T0 + 10 * H, {}),
          ("acme-office-pv1", "device_silent", T0 + 11 * H, T0 + 12 * H, {}),
          ("acme-office-meter", "low_power_factor", T0 + 13 * H, T0 + 15 * H, {})]


def write_site(client, fleet, signals, t_s: np.ndarray) -> dict:
    """Write every device of SITE at times ``t_s`` [s]; returns what was written (for comparison)."""
    site = fleet.sites[SITE]
    written = {}
    for d in site.devices:
        v = signals.values_array(d.id, t_s)
        silent = signals.fault_mask(d.id, "device_silent", t_s)
        tags = d.tags
        pts = [Point(d.kind, tags, {k: float(a[i]) for k, a in v.items()}, int(t_s[i] * NS))
               for i in np.flatnonzero(~silent)]
        pts += [Point("collector_status", {**tags, "source": "modbus"},
                      {"status": "timeout" if silent[i] else "ok", "online": int(not silent[i])}, int(t_s[i] * NS))
                for i in range(t_s.size)]
        client.write_lines(points_to_lines(pts))
        written[d.id] = {k: a[~silent] for k, a in v.items()} | {"time_ns": (t_s[~silent] * NS).astype(np.int64)}
    return written


@pytest.fixture(scope="module")
def fleet():
    return load_fleet("sites.example.toml")


@pytest.fixture(scope="module")
def jobs_db(influxd) -> str:
    name = f"jobs_{os.getpid()}"
    influxd.create_database(name)
    return name


@pytest.fixture(scope="module")
def loaded(influxd, jobs_db, fleet):
    sig = FleetSignals(fleet, seed=5)
    sig.schedule(FAULTS)
    client = InfluxClient(influxd.url, jobs_db)
    t = T0 + np.arange(24 * 60) * 60.0
    written = write_site(client, fleet, sig, t)
    yield client, sig, written
    client.close()


def test_fetch_site_round_trip(loaded, fleet):
    client, _, written = loaded
    site = fleet.sites[SITE]
    data, status = jobs.fetch_site(client, site, T0 * NS, (T0 + 86400) * NS, None)
    assert set(data) == {d.id for d in site.devices}
    m = "acme-office-meter"
    assert np.array_equal(data[m]["time_ns"], written[m]["time_ns"])
    np.testing.assert_array_equal(data[m]["voltage_l2"], written[m]["voltage_l2"])     # bit-exact
    pv_t, pv_online, pv_text = status["acme-office-pv1"]
    assert pv_t.size == 1440 and pv_online.sum() == 1440 - 60
    assert set(pv_text[pv_online == 0]) == {"timeout"} and set(pv_text[pv_online == 1]) == {"ok"}
    # 1-min aggregation of 1-min data is the data (mean of one value, last of one value)
    agg, _ = jobs.fetch_site(client, site, T0 * NS, (T0 + 86400) * NS, 60)
    np.testing.assert_allclose(agg[m]["energy_import"], written[m]["energy_import"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="end_ns"):
        jobs.fetch_site(client, site, 10, 5)


def test_period_evaluation_matches_in_memory_and_stores_alarms(loaded, fleet, tmp_path):
    client, _, written = loaded
    site = fleet.sites[SITE]
    start, end = T0 * NS, (T0 + 86400) * NS
    assert not [f for f in jobs.evaluate_period(fleet, client, start, end, [SITE])[SITE]
                if f.type.startswith("saving_")]                  # 1 day < the default 3 days for advice
    res = jobs.evaluate_period(fleet, client, start, end, [SITE], min_savings_days=1.0)[SITE]
    faults_ = sorted((f.type, f.device_id) for f in res if not f.type.startswith(("pq_", "saving_")))
    assert faults_ == [("comms_loss", "acme-office-pv1"), ("ev_fault", "acme-office-ev1"),
                       ("low_power_factor", "acme-office-meter")]
    mem = assess.assess_site(site, written, start, end)
    assert sorted((f.type, f.device_id, f.start_ns) for f in mem if f.type != "comms_loss") == sorted(
        (f.type, f.device_id, f.start_ns) for f in res if not f.type.startswith(("pq_", "saving_", "comms")))
    sav = [f for f in res if f.type.startswith("saving_")]
    assert sav and sav == sorted(sav, key=lambda f: -(f.yuan_month or 0))
    assert all(f.inputs and f.kwh_month is not None for f in sav)
    assert {f.type for f in res if f.type.startswith("pq_")} >= {"pq_voltage", "pq_unbalance"}
    from workflow import Store

    st = Store(f"sqlite:///{tmp_path / 'wf.db'}", clock=lambda: end)
    st.seed_fleet(fleet)
    ev = jobs.period_events(res, end, fleet)
    assert st.upsert_alarm_events(ev)["raised"] == 3
    assert st.upsert_alarm_events(ev)["unchanged"] == 3


def test_follower_raises_then_clears_once(loaded, fleet, tmp_path):
    client, _, _ = loaded
    from workflow import Store

    now = {"t": (T0 + 9 * H + 30) * NS}                        # 30 s after the EV fault started
    st = Store(f"sqlite:///{tmp_path / 'wf.db'}", clock=lambda: now["t"])
    st.seed_fleet(fleet)
    f = jobs.Follower(fleet, client, st, site_ids=[SITE], clock=lambda: now["t"])
    sent = f.step()
    assert [(e.key, e.cleared_ns) for e in sent] == [("acme-office/acme-office-ev1/ev_fault", None)]
    assert sent[0].raised_ns == (T0 + 9 * H) * NS
    now["t"] += 60 * NS
    assert f.step() == []                                      # still active: nothing new to send
    now["t"] = (T0 + 10 * H + 120) * NS                        # fault removed at 10:00
    sent = f.step()
    assert [(e.key, e.raised_ns, e.cleared_ns) for e in sent] == [
        ("acme-office/acme-office-ev1/ev_fault", (T0 + 9 * H) * NS, (T0 + 10 * H) * NS)]
    now["t"] = (T0 + 11 * H + 240) * NS                        # pv1 silent since 11:00
    keys = [(e.key, e.cleared_ns) for e in f.step()]
    assert keys == [("acme-office/acme-office-pv1/comms_loss", None)]


def test_cli_main_period_json(loaded, influxd, jobs_db, tmp_path, monkeypatch, capsys):
    import argparse
    import json

    monkeypatch.setenv("EH_INFLUX_URL", influxd.url)
    monkeypatch.setenv("EH_INFLUX_DB", jobs_db)
    from energyhost.analyze import run_analyze
    from energyhost.settings import AppSettings

    settings = AppSettings.from_env()
    args = argparse.Namespace(fleet="sites.example.toml", follow=False, site=SITE, start="2026-03-01T16:00:00",
                              end="2026-03-02T16:00:00", db=str(tmp_path / "wf.db"), json=True)
    assert run_analyze(args, settings) == 0
    out = json.loads(capsys.readouterr().out)
    types = sorted(f["type"] for f in out["findings"][SITE] if not f["type"].startswith(("pq_", "saving_")))
    assert types == ["comms_loss", "ev_fault", "low_power_factor"]
    assert out["stored"]["raised"] == 3
    bad = argparse.Namespace(**{**vars(args), "start": "yesterday"})
    assert run_analyze(bad, settings) == 2 and "--start" in capsys.readouterr().err
    assert run_analyze(argparse.Namespace(**{**vars(args), "site": "atlantis"}), settings) == 2


def test_follower_start_up_grace_and_monitoring_start(loaded, fleet):
    client, _, _ = loaded
    now = {"t": (T0 + 11 * H + 1800 + 30) * NS}                # pv1 silent since 11:00; follower starts 11:30
    f = jobs.Follower(fleet, client, None, site_ids=[SITE], clock=lambda: now["t"],
                      started_ns=(T0 + 11 * H + 1800) * NS)
    assert f.step() == []                                      # within the 60-s start-up grace
    now["t"] = (T0 + 11 * H + 1800 + 120) * NS
    assert f.step() == []                                      # no sample since start: wait 5 min (start-up)
    now["t"] = (T0 + 11 * H + 1800 + 301) * NS
    sent = f.step()
    assert [(e.key, e.raised_ns, e.cleared_ns) for e in sent] == [
        ("acme-office/acme-office-pv1/comms_loss", (T0 + 11 * H + 1800) * NS, None)]   # lost since monitoring began
    now["t"] = (T0 + 12 * H + 180) * NS
    sent = f.step()
    assert [(e.key, e.cleared_ns) for e in sent] == [("acme-office/acme-office-pv1/comms_loss", (T0 + 12 * H) * NS)]


def test_follower_waits_longer_for_a_device_never_seen(loaded, fleet):
    client, _, _ = loaded
    started = (T0 + 11 * H + 600) * NS                         # pv1 has been silent for 10 min already
    now = {"t": started + 120 * NS}
    f = jobs.Follower(fleet, client, None, site_ids=[SITE], clock=lambda: now["t"], started_ns=started,
                      lookback_s=300)                          # pv1 has no sample in the window: never seen
    assert f.step() == []
    now["t"] = started + 301 * NS
    assert [e.key for e in f.step()] == ["acme-office/acme-office-pv1/comms_loss"]


def test_follower_does_not_call_collector_start_up_a_loss(loaded, fleet):
    client, _, _ = loaded
    # pv1's data come back at 12:00; pretend monitoring started at 11:58 (collectors not yet delivering)
    started = (T0 + 12 * H - 120) * NS
    now = {"t": (T0 + 12 * H + 180) * NS}
    f = jobs.Follower(fleet, client, None, site_ids=[SITE], clock=lambda: now["t"], started_ns=started)
    assert f.step() == []


def test_periodic_jobs_write_daily_pq_and_savings(loaded, fleet, tmp_path):
    import json

    client, _, _ = loaded
    p = jobs.PeriodicJobs(fleet, client, tmp_path, site_ids=[SITE], clock=lambda: (T0 + 86400 + 30) * NS)
    out = p.run_once()[SITE]
    assert {x["type"] for x in out["pq"]} >= {"pq_voltage", "pq_frequency"}
    assert out["savings"] == []          # 1 day of data: no monthly advice from it
    f = tmp_path / SITE / "2026-03-02.json"
    assert json.loads(f.read_text())["window_pq"] == [(T0 + 86400) * NS - 86400 * NS, (T0 + 86400) * NS]


def test_periodic_jobs_retry_soon_after_a_failed_run(loaded, fleet, tmp_path, caplog):
    """InfluxDB unreachable at the first run: retried after first_after_s (doubling), not a day later."""
    import threading
    import time

    from energyhost.devstack import free_port

    client, _, _ = loaded
    p = jobs.PeriodicJobs(fleet, InfluxClient(f"http://127.0.0.1:{free_port()}", client.database, timeout=1.0),
                          tmp_path, site_ids=[SITE], clock=lambda: (T0 + 86400 + 30) * NS)
    stop = threading.Event()
    th = threading.Thread(target=p.run, args=(stop,), kwargs={"every_s": 86400.0, "first_after_s": 0.3})
    th.start()
    try:
        deadline = time.monotonic() + 20
        while "periodic job failed" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        p.client = client                               # InfluxDB "comes back"
        f = tmp_path / SITE / "2026-03-02.json"
        while not f.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f.exists(), "the failed run was not retried within seconds"
    finally:
        stop.set()
        th.join(10)


# ---------------------------------------------------------------- the backfill path (simulators.backfill's writer)

BF_DAYS = 8
BF_END = 1773504000                  # 2026-03-15T00:00Z


def _backfilled(influxd, fleet, name: str, with_faults: bool):
    from core.profiles import load_profiles
    from simulators.backfill import backfill, example_fault_schedule

    influxd.create_database(name)
    client = InfluxClient(influxd.url, name)
    site = fleet.sites[SITE]
    sched = [f for f in example_fault_schedule(fleet, days=BF_DAYS, end=BF_END) if f[0] in
             {d.id for d in site.devices}] if with_faults else []
    backfill(fleet, FleetSignals(fleet, seed=9), client, days=BF_DAYS, end=BF_END, faults=sched,
             devices=[d.id for d in site.devices], profiles=load_profiles())
    return client, sched


EXPECT = {"inverter_trip": {"inverter_trip"}, "string_loss": {"string_mismatch"},
          "transformer_overtemp": {"transformer_overtemp", "implausible_rate", "transformer_ageing"},
          "low_power_factor": {"low_power_factor"}, "phase_unbalance": {"current_unbalance"},
          "meter_reset": {"counter_reset"}, "harmonic_distortion": {"harmonic_voltage", "harmonic_current"},
          "voltage_sag": {"voltage_deviation"}, "ev_fault": {"ev_fault"}, "ev_stuck": {"ev_stuck"},
          "device_silent": {"comms_loss"}, "device_exceptions": {"comms_loss"}}


def test_backfilled_faults_all_detected_and_nothing_else(influxd, fleet):
    client, sched = _backfilled(influxd, fleet, f"bf_faults_{os.getpid()}", True)
    try:
        res = jobs.evaluate_period(fleet, client, (BF_END - BF_DAYS * 86400) * NS, BF_END * NS, [SITE])[SITE]
    finally:
        client.close()
    found = [f for f in res if not f.type.startswith(("pq_", "saving_"))]
    assert {f[1] for f in sched} == set(EXPECT)                # every fault type the simulator has
    used = set()
    # an overheated winding also ages the transformer the controller watches (a finding on the transformer)
    watched = {tr.temperature_controller: tr.id for tr in fleet.sites[SITE].transformers if tr.temperature_controller}
    for dev, fault, start, end, _ in sched:
        hits = [i for i, f in enumerate(found) if f.device_id in (dev, watched.get(dev)) and f.type in EXPECT[fault]
                and f.start_ns < (end + 1200) * NS and f.end_ns > start * NS]
        assert hits, (dev, fault)
        used.update(hits)
    assert [(f.type, f.device_id) for i, f in enumerate(found) if i not in used] == []


def test_backfilled_fault_free_period_raises_nothing(influxd, fleet):
    client, _ = _backfilled(influxd, fleet, f"bf_clean_{os.getpid()}", False)
    try:
        res = jobs.evaluate_period(fleet, client, (BF_END - BF_DAYS * 86400) * NS, BF_END * NS, [SITE])[SITE]
    finally:
        client.close()
    assert [(f.type, f.device_id) for f in res if not f.type.startswith(("pq_", "saving_"))] == []
    assert jobs.period_events(res, BF_END * NS, fleet) == []
    assert [f.type for f in res if f.type.startswith("saving_")]            # 8 days: advice is given


# ---------------------------------------------------------------- a month's window, in chunks

MONTH_T0 = 1772323200 - 8 * H        # 2026-03-01T00:00 local


class _Recorder:
    """An InfluxClient wrapper that records the time span of every query it forwards."""

    def __init__(self, client):
        self.client, self.spans = client, []

    def query_arrays(self, q, params=None, **kw):
        if params and "start" in params:
            self.spans.append((params["end"] - params["start"]) / NS)
        return self.client.query_arrays(q, params, **kw)

    def query(self, q, params=None, **kw):
        return self.client.query(q, params, **kw)


@pytest.fixture(scope="module")
def month(influxd, fleet):
    """31 days of SITE, one sample every 30 min (small data, a month's window)."""
    name = f"month_{os.getpid()}"
    influxd.create_database(name)
    client = InfluxClient(influxd.url, name)
    t = MONTH_T0 + np.arange(31 * 48) * 1800.0
    written = write_site(client, fleet, FleetSignals(fleet, seed=6), t)
    yield client, written
    client.close()


def test_month_window_is_read_in_day_chunks(month, fleet):
    client, written = month
    site = fleet.sites[SITE]
    rec = _Recorder(client)
    start, end = MONTH_T0 * NS, (MONTH_T0 + 31 * 86400) * NS
    data, status = jobs.fetch_site(rec, site, start, end, 60)
    assert rec.spans and max(rec.spans) <= 86400                    # no query spans more than a day
    assert sum(rec.spans) == pytest.approx(31 * 86400 * (len({d.kind for d in site.devices}) + 1))
    m = "acme-office-meter"
    np.testing.assert_array_equal(data[m]["time_ns"], written[m]["time_ns"])     # nothing lost or doubled
    np.testing.assert_array_equal(data[m]["energy_import"], written[m]["energy_import"])
    assert status[m][0].size == 31 * 48
    one, _ = jobs.fetch_site(client, site, start, end, 60, chunk_s=None)        # one query: same arrays
    assert set(one) == set(data)
    for d in one:
        assert set(one[d]) == set(data[d])
        for k in one[d]:
            np.testing.assert_array_equal(one[d][k], data[d][k])


def test_month_window_chunks_align_to_the_aggregation_step(month, fleet):
    client, _ = month
    rec = _Recorder(client)
    start = MONTH_T0 * NS + 17 * NS                                 # not on a minute: no bucket split in two
    data, _ = jobs.fetch_site(rec, fleet.sites[SITE], start, start + 3 * 86400 * NS, 60)
    t = data["acme-office-meter"]["time_ns"]
    assert np.all(np.diff(t) > 0)


def test_cli_analyses_31_days(month, influxd, tmp_path, monkeypatch, capsys):
    import argparse
    import json

    client, _ = month
    monkeypatch.setenv("EH_INFLUX_URL", influxd.url)
    monkeypatch.setenv("EH_INFLUX_DB", client.database)
    from energyhost.analyze import run_analyze
    from energyhost.settings import AppSettings

    args = argparse.Namespace(fleet="sites.example.toml", follow=False, site=SITE, start="2026-02-28T16:00:00",
                              end="2026-03-31T16:00:00", db=None, json=True)
    assert run_analyze(args, AppSettings.from_env()) == 0
    out = json.loads(capsys.readouterr().out)
    assert {f["type"] for f in out["findings"][SITE] if f["type"].startswith("pq_")} >= {"pq_voltage"}


def test_modbus_exception_status_reaches_the_finding(influxd, fleet):
    """A device answering with Modbus exception 02: the comms finding names the exception, not silence."""
    name = f"exc_{os.getpid()}"
    influxd.create_database(name)
    client = InfluxClient(influxd.url, name)
    site = fleet.sites[SITE]
    dev = fleet.devices["acme-office-ev1"]
    t = T0 + np.arange(60) * 60.0
    sig = FleetSignals(fleet, seed=5)
    v = sig.values_array(dev.id, t)
    bad = t >= T0 + 1800
    pts = [Point(dev.kind, dev.tags, {k: float(a[i]) for k, a in v.items()}, int(t[i] * NS))
           for i in np.flatnonzero(~bad)]
    pts += [Point("collector_status", {**dev.tags, "source": "modbus"},
                  {"status": "exception_02" if bad[i] else "ok", "online": int(not bad[i])}, int(t[i] * NS))
            for i in range(t.size)]
    client.write_lines(points_to_lines(pts))
    try:
        for res in (60, None):
            data, status = jobs.fetch_site(client, site, T0 * NS, (T0 + 3600) * NS, res)
            f = [x for x in assess.assess_device(site, dev, data[dev.id], T0 * NS, (T0 + 3600) * NS, status[dev.id])
                 if x.type == "comms_loss"]
            assert [x.evidence["modbus_exception"] for x in f] == [2], res
            assert f[0].explanation_en.startswith("Device answers with Modbus exception 02 (illegal address)")
    finally:
        client.close()


def test_cli_period_survives_one_failing_device(loaded, influxd, jobs_db, monkeypatch, capsys):
    """One device's checks raising never stops `energyhost analyze`: exit 0, the others' findings, and an
    analysis_failed finding naming that device."""
    import argparse
    import json

    real = assess.dc.ev_charger

    def broken(c, r):
        if c.device.id == "acme-office-ev1":
            raise ValueError("cannot convert float NaN to integer")
        return real(c, r)

    monkeypatch.setattr(assess.dc, "ev_charger", broken)
    monkeypatch.setenv("EH_INFLUX_URL", influxd.url)
    monkeypatch.setenv("EH_INFLUX_DB", jobs_db)
    from energyhost.analyze import run_analyze
    from energyhost.settings import AppSettings

    args = argparse.Namespace(fleet="sites.example.toml", follow=False, site=SITE, start="2026-03-01T16:00:00",
                              end="2026-03-02T16:00:00", db=None, json=True)
    assert run_analyze(args, AppSettings.from_env()) == 0
    out = json.loads(capsys.readouterr().out)
    got = sorted((f["type"], f["device_id"]) for f in out["findings"][SITE]
                 if not f["type"].startswith(("pq_", "saving_")))
    assert got == [("analysis_failed", "acme-office-ev1"), ("comms_loss", "acme-office-pv1"),
                   ("low_power_factor", "acme-office-meter")]
