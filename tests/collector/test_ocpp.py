"""OCPP 1.6J: charge-point simulator (ocpp package) → central system → Writer → a real influxd, on loopback."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from collector.ocpp_server import CentralSystem, fault_code, sampled_fields
from core.config import ConfigError, parse_fleet
from core.influx import InfluxClient, Writer
from core.ocpp_auth import charger_passwords
from simulators.ocpp_charger import ChargerSim

T0 = 1_780_000_000.0          # 2026-05-28, a fixed past time for the chargers' own timestamps


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _charger(did: str, cp: str, **kw) -> dict:
    return {"id": did, "kind": "ev_charger", "transport": "ocpp", "charge_point_id": cp,
            "password_env": "EH_TEST_CP_PW", **kw}


def _fleet(*devices: dict):
    return parse_fleet({"customer": [{"id": "cust", "site": [{"id": "site1", "device": list(devices)}]}]})


FLEET = _fleet(_charger("ev1", "CP-001"), _charger("ev2", "CP-002"))
PASSWORDS = {"CP-001": "s3cret-one", "CP-002": "s3cret-two"}


async def _until(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


# ---------------------------------------------------------------- pure parts

def test_meter_value_measurands_map_to_channels_with_units():
    t, fields, unmapped = sampled_fields({"timestamp": "2026-05-28T20:26:40Z", "sampled_value": [
        {"value": "12.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
        {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
        {"value": "31.2", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
        {"value": "229.1", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
        {"value": "80", "measurand": "SoC", "unit": "Percent"},
        {"value": "3"},                                     # no measurand: the energy register (Wh)
        {"value": "1", "measurand": "Temperature"},         # not mapped: counted
    ]})
    assert t == T0
    assert fields == {"energy_import": 3.0, "active_power": 7200.0, "current_l2": 31.2, "voltage_l1": 229.1,
                      "state_of_charge": 80.0}
    assert unmapped == 1
    assert (fault_code("NoError"), fault_code("GroundFailure"), fault_code("Vendor-thing")) == (0, 3, 7)


@pytest.mark.parametrize(("change", "message"), [
    ({"charge_point_id": "CP 1/x"}, "device 'ev1': key 'charge_point_id': 1-48 characters"),
    ({"password_env": None}, "device 'ev1': key 'password_file': give exactly one of"),
    ({"password_file": "pw.txt"}, "device 'ev1': key 'password_file': give exactly one of"),
    ({"kind": "meter"}, "device 'ev1': key 'kind': an ocpp device is an ev_charger"),
    ({"profile": "ev_charger_generic_ac"}, "device 'ev1': key 'profile'"),
    ({"password_env": "lower"}, "device 'ev1': key 'password_env': must be an environment variable name"),
])
def test_bad_ocpp_keys_name_device_and_key(change, message):
    d = {k: v for k, v in {**_charger("ev1", "CP-1"), **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        _fleet(d)


def test_passwords_from_file_and_env_and_one_line_errors(tmp_path):
    (tmp_path / "pw").write_text("file-secret\n")
    raw = {"customer": [{"id": "c", "site": [{"id": "s", "device": [
        {**_charger("a", "A"), "password_env": None, "password_file": "pw"}, _charger("b", "B")]}]}]}
    raw["customer"][0]["site"][0]["device"][0].pop("password_env")
    fleet = parse_fleet(raw, path=tmp_path / "sites.toml")
    assert charger_passwords(fleet, {"EH_TEST_CP_PW": "env-secret"}) == {"A": "file-secret", "B": "env-secret"}
    with pytest.raises(ValueError, match="device 'b': key 'password_env': environment variable EH_TEST_CP_PW"):
        charger_passwords(fleet, {})
    (tmp_path / "pw").unlink()
    with pytest.raises(ValueError, match="device 'a': key 'password_file': cannot read 'pw'"):
        charger_passwords(fleet, {"EH_TEST_CP_PW": "x"})


# ---------------------------------------------------------------- against the central system

class HeldWriter:
    """A submit() that keeps on_durable callbacks until the test releases them."""

    def __init__(self, hold: bool = False):
        self.points, self.held, self.hold = [], [], hold

    def submit(self, points, on_durable=None):
        self.points.extend(points)
        if on_durable and self.hold:
            self.held.append(on_durable)
        elif on_durable:
            on_durable()

    def release(self):
        for cb in self.held:
            cb()
        self.held.clear()


def test_basic_auth_refuses_wrong_password_foreign_user_and_unknown_id(tmp_path):
    async def main():
        cs = await CentralSystem(FLEET, HeldWriter().submit, PASSWORDS, state_dir=tmp_path).start()
        url = f"ws://127.0.0.1:{cs.port}"
        sims = [ChargerSim("CP-001", url, "wrong"), ChargerSim("CP-999", url, "s3cret-one"),
                ChargerSim("CP-002", url, None)]
        foreign = ChargerSim("CP-002", url, "s3cret-one")
        foreign._headers = lambda: {"Authorization": "Basic Q1AtMDAxOnMzY3JldC1vbmU="}   # CP-001:s3cret-one
        sims.append(foreign)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(s.run(stop)) for s in sims]
        ok = await _until(lambda: all(s.refused for s in sims), 5)
        stop.set()
        await asyncio.gather(*tasks)
        await cs.stop()
        return ok, sims, cs

    ok, sims, cs = asyncio.run(main())
    assert ok and all(s.connects == 0 for s in sims)
    assert cs.counters["auth_refused"] >= 4 and cs.counters["connects"] == 0


def test_meter_values_and_stop_are_answered_only_once_durable(tmp_path):
    held = HeldWriter()

    async def main():
        cs = await CentralSystem(FLEET, held.submit, PASSWORDS, state_dir=tmp_path).start()
        sim = ChargerSim("CP-001", f"ws://127.0.0.1:{cs.port}", "s3cret-one")
        stop = asyncio.Event()
        task = asyncio.create_task(sim.run(stop))
        try:
            assert await _until(lambda: sim.connected.is_set() and sim.answers.get("StatusNotification") == 2)
            held.hold = True
            sim.start_transaction(1, "TAG1", 1000, T0)
            sim.meter_values(1, T0 + 60, {"energy_import": 1100.0})
            sim.stop_transaction(1, 1200, T0 + 120)
            for action in ("StartTransaction", "MeterValues", "StopTransaction"):
                assert await _until(lambda: len(held.held) == 1)
                await asyncio.sleep(0.3)
                assert sim.answers.get(action) is None, f"{action} answered before its data was durable"
                held.release()
                assert await _until(lambda a=action: sim.answers.get(a) == 1)
        finally:
            stop.set()
            await task
            await cs.stop()
        return sim

    sim = asyncio.run(main())
    assert sim.pending() == 0 and sim.tx_ids


def _session_rows(client: InfluxClient) -> list[dict]:
    res = client.query('SELECT * FROM "ev_session"')
    if not res:
        return []
    cols = res[0]["columns"]
    return [dict(zip(cols, r, strict=True)) for r in res[0]["values"]]


@pytest.mark.integration
def test_session_from_the_simulator_lands_in_influxdb_with_its_energy(influxd, influx_db, tmp_path):
    client = InfluxClient(influxd.url, influx_db)
    writer = Writer(client, tmp_path / "spool", flush_interval_s=0.1)

    async def main():
        cs = await CentralSystem(FLEET, writer.submit, PASSWORDS, state_dir=tmp_path, state_interval_s=0.2).start()
        sim = ChargerSim("CP-002", f"ws://127.0.0.1:{cs.port}", "s3cret-two", connectors=2)
        stop = asyncio.Event()
        task = asyncio.create_task(sim.run(stop))
        assert await _until(sim.connected.is_set)
        sim.start_transaction(2, "RFID-7", 50_000, T0)
        await sim.set_status(2, "Charging")
        for k in range(1, 5):
            sim.meter_values(2, T0 + 300 * k, {"energy_import": 50_000 + 550.0 * k, "active_power": 6600.0,
                                               "current_l1": 28.7, "voltage_l1": 230.0})
        sim.meter_values(2, T0 + 1800, {"energy_import": 52_200.0, "active_power": 0.0})   # full: flat
        sim.stop_transaction(2, 52_200, T0 + 2400, reason="EVDisconnected")
        await sim.set_status(1, "Faulted", "GroundFailure")
        assert await _until(lambda: sim.answers.get("StopTransaction") == 1 and sim.pending() == 0)
        await asyncio.sleep(0.5)                       # a few state rounds for the faulted connector
        stop.set()
        await task
        await cs.stop()
        return cs

    cs = asyncio.run(main())
    assert writer.flush(10)
    writer.close()
    rows = _session_rows(client)
    assert len(rows) == 1
    s = rows[0]
    assert s["time"] == int(T0 * 1e9) and s["device"] == "ev2" and s["connector"] == "2"
    assert s["session_energy"] == 2200.0 and s["meter_start"] == 50_000 and s["meter_stop"] == 52_200
    assert s["session_duration"] == 2400.0
    assert s["session_idle_time"] == 1200.0          # energy last rose at T0+1200, stopped at T0+2400
    assert (s["id_tag"], s["stop_reason"]) == ("RFID-7", "EVDisconnected") and s["transaction_id"] > 0
    mv = client.query('SELECT "energy_import", "session_energy", "current_l1" FROM "ev_connector" '
                      'WHERE "device" = \'ev2\' AND "connector" = \'2\' AND "energy_import" > 0')
    assert [r[1] for r in mv[0]["values"]] == [50_550.0, 51_100.0, 51_650.0, 52_200.0, 52_200.0]
    assert mv[0]["values"][-1][2] == 2200.0
    c1 = client.query_arrays('SELECT "ocpp_status", "fault_code" FROM "ev_connector" WHERE "device" = \'ev2\' '
                             'AND "connector" = \'1\' AND "fault_code" > 0')
    assert len(c1["time"]) >= 2 and set(c1["fault_code"]) == {3.0} and set(c1["ocpp_status"]) == {8.0}
    # the charger as one device (no connector tag, as the analytics read it): connector 1's fault wins
    # over connector 2's state, in every state round since, so ev_faulted flags it
    from analytics.faults import ev_faulted

    f = client.query_arrays('SELECT "ocpp_status", "fault_code" FROM "ev_charger" '
                            'WHERE "device" = \'ev2\' AND time >= $t', params={"t": int(c1["time"][0]) + 100_000_000})
    assert len(f["time"]) >= 2 and set(f["fault_code"]) == {3.0} and set(f["ocpp_status"]) == {8.0}, (f, c1)
    assert ev_faulted(f["time"], ocpp_status=f["ocpp_status"], fault_code=f["fault_code"], min_duration_s=0.1).any()
    summary = [r[1] for r in client.query('SELECT "ocpp_status" FROM "ev_charger" WHERE "device" = \'ev2\'')[0]["values"]]
    # connector 2 Charging spoke for the charger, then connector 1's fault does (state rounds are stamped by
    # our clock, notifications by the charger's: around a change the two may interleave by a few ms)
    assert summary[-1] == 8.0 and 2.0 in summary[:summary.index(8.0)]
    assert cs.counters["connector_errors"] == 1
    client.close()


@pytest.mark.integration
def test_stop_transaction_while_influxdb_is_down_is_answered_once_spooled(dedicated_influxd, tmp_path):
    dedicated_influxd.create_database("ocpp")
    client = InfluxClient(dedicated_influxd.url, "ocpp", timeout=2.0)
    writer = Writer(client, tmp_path / "spool", flush_interval_s=0.1, retry_max_s=0.5)

    async def main():
        cs = await CentralSystem(FLEET, writer.submit, PASSWORDS, state_dir=tmp_path, state_interval_s=60).start()
        sim = ChargerSim("CP-001", f"ws://127.0.0.1:{cs.port}", "s3cret-one")
        stop = asyncio.Event()
        task = asyncio.create_task(sim.run(stop))
        assert await _until(sim.connected.is_set)
        sim.start_transaction(1, "TAG", 0, T0)
        assert await _until(lambda: sim.answers.get("StartTransaction") == 1)
        await asyncio.to_thread(dedicated_influxd.stop)
        sim.stop_transaction(1, 7300, T0 + 3600)
        assert await _until(lambda: sim.answers.get("StopTransaction") == 1, 20)
        spooled = writer.stats()
        stop.set()
        await task
        await cs.stop()
        return spooled

    spooled = asyncio.run(main())
    assert spooled["spooled_bytes"] > 0 and spooled["written"] < spooled["received"]
    dedicated_influxd.start()
    assert writer.drain(30)
    writer.close()
    rows = _session_rows(client)
    assert len(rows) == 1 and rows[0]["session_energy"] == 7300.0 and rows[0]["session_duration"] == 3600.0
    client.close()


@pytest.mark.integration
def test_transactions_queued_offline_are_sent_in_order_after_connecting(influxd, influx_db, tmp_path):
    client = InfluxClient(influxd.url, influx_db)
    writer = Writer(client, tmp_path / "spool", flush_interval_s=0.1)
    port = _port()

    async def main():
        sim = ChargerSim("CP-001", f"ws://127.0.0.1:{port}", "s3cret-one")
        stop = asyncio.Event()
        task = asyncio.create_task(sim.run(stop))
        # no central system yet: the charger works offline and queues its transaction messages
        sim.start_transaction(1, "VAN-3", 10_000, T0)
        sim.meter_values(1, T0 + 600, {"energy_import": 13_000.0})
        sim.stop_transaction(1, 14_000, T0 + 1200, reason="Local")
        sim.start_transaction(2, "VAN-4", 500, T0 + 60)
        await asyncio.sleep(1.0)
        assert sim.pending() == 4 and sim.connects == 0
        cs = await CentralSystem(FLEET, writer.submit, PASSWORDS, state_dir=tmp_path, port=port).start()
        assert await _until(lambda: sim.pending() == 0, 20)
        stop.set()
        await task
        await cs.stop()
        return sim, cs

    sim, cs = asyncio.run(main())
    assert writer.flush(10)
    writer.close()
    rows = sorted(_session_rows(client), key=lambda r: r["time"])
    assert [r["time"] for r in rows] == [int(T0 * 1e9), int((T0 + 60) * 1e9)]       # original timestamps
    assert rows[0]["session_energy"] == 4000.0 and rows[0]["stop_reason"] == "Local"
    assert rows[1]["meter_start"] == 500 and rows[1].get("meter_stop") is None and cs.stats()["open_sessions"] == 1
    client.close()


def test_open_sessions_survive_a_central_system_restart(tmp_path):
    held = HeldWriter()

    async def run_once(actions):
        cs = await CentralSystem(FLEET, held.submit, PASSWORDS, state_dir=tmp_path).start()
        sim = ChargerSim("CP-001", f"ws://127.0.0.1:{cs.port}", "s3cret-one")
        stop = asyncio.Event()
        task = asyncio.create_task(sim.run(stop))
        actions(sim)
        ok = await _until(lambda: sim.connected.is_set() and sim.pending() == 0)
        stop.set()
        await task
        await cs.stop()
        return ok, sim

    ok1, sim1 = asyncio.run(run_once(lambda s: s.start_transaction(1, "T", 100, T0)))
    tx = sim1.tx_ids[-1]

    def stop_it(s):
        s.tx_ids[-1] = tx
        s.open_tx[1] = -1
        s.stop_transaction(1, 900, T0 + 600)

    ok2, _ = asyncio.run(run_once(stop_it))
    assert ok1 and ok2
    stops = [p for p in held.points if p.measurement == "ev_session" and "meter_stop" in p.fields]
    assert len(stops) == 1 and stops[0].fields["session_energy"] == 800.0 and stops[0].time_ns == int(T0 * 1e9)


def test_garbage_and_invalid_calls_get_errors_and_the_charger_is_still_served(tmp_path):
    import base64
    import json

    from websockets.asyncio.client import connect

    held = HeldWriter()
    auth = {"Authorization": "Basic " + base64.b64encode(b"CP-001:s3cret-one").decode()}

    async def main():
        cs = await CentralSystem(FLEET, held.submit, PASSWORDS, state_dir=tmp_path).start()
        answers = []
        try:
            async with connect(f"ws://127.0.0.1:{cs.port}/CP-001", subprotocols=["ocpp1.6"],
                               additional_headers=auth) as ws:
                for raw in ("not json", "[]", '[2, "a1", "NoSuchAction", {}]',
                            '[2, "a2", "StartTransaction", {"connectorId": "one"}]',
                            '[2, "a3", "MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": "x", '
                            '"sampledValue": [{"value": "1"}]}]}]',
                            '[2, "a4", "Heartbeat", {}]'):
                    await ws.send(raw)
                    try:
                        answers.append(json.loads(await asyncio.wait_for(ws.recv(), 2)))
                    except TimeoutError:
                        answers.append(None)
        finally:
            await cs.stop()
        return answers, cs

    answers, cs = asyncio.run(main())
    assert answers[0] is None and answers[1] is None               # not OCPP at all: ignored, logged
    assert answers[2][0] == 4 and answers[2][1] == "a1" and answers[2][2] == "NotSupported"
    assert answers[3][0] == 4 and answers[3][1] == "a2"             # schema violation: a CallError
    # a bad timestamp: the value is skipped and counted, the message acknowledged (else resent forever)
    assert answers[4][0] == 3 and answers[4][1] == "a3" and cs.counters["meter_values_bad"] == 1
    assert answers[5][0] == 3 and "currentTime" in answers[5][2]    # and the charger is still served
    assert not [p for p in held.points if p.measurement in ("ev_charger", "ev_connector")]


def test_a_reconnecting_charger_replaces_its_old_connection(tmp_path):
    held = HeldWriter()

    async def main():
        cs = await CentralSystem(FLEET, held.submit, PASSWORDS, state_dir=tmp_path).start()
        url = f"ws://127.0.0.1:{cs.port}"
        old, new = ChargerSim("CP-001", url, "s3cret-one"), ChargerSim("CP-001", url, "s3cret-one")
        stop_old, stop_new = asyncio.Event(), asyncio.Event()
        t_old = asyncio.create_task(old.run(stop_old))
        assert await _until(old.connected.is_set)
        t_new = asyncio.create_task(new.run(stop_new))
        assert await _until(lambda: new.connected.is_set() and cs.counters["replaced_connections"] == 1)
        stop_old.set()
        await t_old
        await asyncio.sleep(0.2)
        connected = cs.chargers["CP-001"].connected
        stop_new.set()
        await t_new
        await cs.stop()
        return connected

    assert asyncio.run(main()) is True


def test_follow_signals_turns_the_signal_model_into_one_session(tmp_path):
    """Connector 1 driven by a charger's channels over time: plug-in, charging, full, unplugged."""
    from simulators.ocpp_charger import follow_signals

    held = HeldWriter()
    script = [  # (ocpp_status index, energy_import, session_energy, active_power)
        (0, 5000.0, 0.0, 0.0), (1, 5000.0, 0.0, 0.0), (2, 5600.0, 600.0, 7000.0), (2, 6200.0, 1200.0, 7000.0),
        (4, 6300.0, 1300.0, 0.0), (4, 6300.0, 1300.0, 0.0), (0, 6300.0, 0.0, 0.0), (0, 6300.0, 0.0, 0.0)]
    step = {"i": 0}

    def values(t):
        s, e, se, p = script[min(step["i"], len(script) - 1)]
        step["i"] += 1
        return {"ocpp_status": float(s), "energy_import": e, "session_energy": se, "active_power": p,
                "fault_code": 0.0}

    async def main():
        cs = await CentralSystem(FLEET, held.submit, PASSWORDS, state_dir=tmp_path).start()
        sim = ChargerSim("CP-001", f"ws://127.0.0.1:{cs.port}", "s3cret-one")
        stop = asyncio.Event()
        task = asyncio.create_task(sim.run(stop))
        assert await _until(sim.connected.is_set)
        drive = asyncio.create_task(follow_signals(sim, values, stop, interval_s=0.05))
        assert await _until(lambda: step["i"] >= len(script) and sim.pending() == 0)
        stop.set()
        await asyncio.gather(task, drive)
        await cs.stop()
        return cs

    cs = asyncio.run(main())
    sessions = [p for p in held.points if p.measurement == "ev_session"]
    stop_point = next(p for p in sessions if "meter_stop" in p.fields)
    assert stop_point.fields["meter_stop"] == 6300 and stop_point.fields["session_energy"] == 1300.0
    assert stop_point.fields["stop_reason"] == "EVDisconnected" and cs.stats()["open_sessions"] == 0
    statuses = [p.fields["ocpp_status"] for p in held.points if p.measurement == "ev_connector"
                and "ocpp_status" in p.fields and p.tags["connector"] == "1"]
    assert [s for i, s in enumerate(statuses) if i == 0 or s != statuses[i - 1]] == [0.0, 1.0, 2.0, 4.0, 0.0]


def test_a_charger_silent_for_three_heartbeats_is_closed_and_marked_offline(tmp_path):
    import base64

    from websockets.asyncio.client import connect

    held = HeldWriter()
    auth = {"Authorization": "Basic " + base64.b64encode(b"CP-001:s3cret-one").decode()}

    async def main():
        cs = await CentralSystem(FLEET, held.submit, PASSWORDS, state_dir=tmp_path, heartbeat_s=1,
                                 state_interval_s=0.2).start()
        try:
            async with connect(f"ws://127.0.0.1:{cs.port}/CP-001", subprotocols=["ocpp1.6"],
                               additional_headers=auth) as ws:
                await ws.send('[2, "b1", "BootNotification", {"chargePointVendor": "x", "chargePointModel": "y"}]')
                await ws.recv()
                t0 = time.monotonic()
                assert await _until(lambda: not cs.chargers["CP-001"].connected, 10)
                waited = time.monotonic() - t0
        finally:
            await cs.stop()
        return waited, cs

    waited, cs = asyncio.run(main())
    assert 2.5 < waited < 6 and cs.counters["silent_closed"] == 1
    last = [p for p in held.points if p.measurement == "collector_status"][-1]
    assert last.fields == {"status": "disconnected", "online": 0}
