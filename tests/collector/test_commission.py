"""Commissioning check against the real simulator on loopback: a right profile fits; a wrong word order,
a wrong scale and a wrong CT ratio are each found, with the change that fits."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

import numpy as np
import pytest

from collector.commission import Context, Sample, judge, swapped, verdict_table
from core.config import parse_fleet
from core.profiles import Register, load_profiles, plan_blocks
from energyhost.commission import commission
from energyhost.devstack import free_port
from simulators.modbus_server import serve_fleet
from simulators.signals import FleetSignals

PROFILES = load_profiles()
METER = "meter_acrel_dtsd1352"


def _fleet(port: int, ct_ratio: float = 1.0):
    dev = {"id": "t1-meter", "kind": "meter", "transport": "modbus", "profile": METER, "host": "127.0.0.1",
           "port": port, "ct_ratio": ct_ratio}
    site = {"id": "s1", "nominal_voltage_v": 230.0, "device": [dev],
            "transformer": [{"id": "t1", "rated_kva": 1000, "p0_kw": 1.4, "pk_kw": 8.1, "meter": "t1-meter"}]}
    return parse_fleet({"customer": [{"id": "c1", "site": [site]}]})


def _variant(**rows):
    """The meter profile with some rows changed (the device as it really is)."""
    full = PROFILES[METER]
    regs = tuple(replace(r, **rows[r.key]) if r.key in rows else r for r in full.registers)
    return replace(full, registers=regs, blocks=tuple(plan_blocks(regs, max_gap=full.max_gap)))


def _commission(served_profile, served_fleet, fleet, seconds=8.0):
    return _serving(served_profile, served_fleet,
                    lambda: commission(fleet, PROFILES, "t1-meter", seconds, interval_s=0.5))


def _serving(served_profile, served_fleet, action):
    """Serve the simulator in a thread (its own loop) while ``action()`` runs in this one."""
    ready, stop, box = threading.Event(), threading.Event(), {}

    def serve():
        async def main():
            signals = FleetSignals(served_fleet, seed=3)
            sim = await serve_fleet(served_fleet, {**PROFILES, METER: served_profile}, signals.values,
                                    update_interval_s=0.2)
            ready.set()
            try:
                while not stop.is_set():
                    await asyncio.sleep(0.05)
            finally:
                await sim.stop()
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            box["error"] = exc
            ready.set()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    assert ready.wait(20) and "error" not in box, box
    try:
        return action()
    finally:
        stop.set()
        th.join(20)


def _wrong(findings):
    return [f for f in findings if f.ok is False]


def test_right_profile_fits():
    fleet = _fleet(free_port())
    findings, statuses = _commission(PROFILES[METER], fleet, fleet)
    assert set(statuses) == {"ok"}
    assert not _wrong(findings), verdict_table(findings)
    checks = {f.check for f in findings if f.ok}
    assert {"level", "P = U·I·PF", "S² = P² + Q²", "counter", "current vs rating"} <= checks


def test_wrong_word_order_is_found():
    fleet = _fleet(free_port())
    device_as_is = _variant(active_power_l2={"word_order": "little"})
    findings, _ = _commission(device_as_is, fleet, fleet)
    wrong = _wrong(findings)
    assert [f.channel for f in wrong] == ["active_power_l2", "apparent_power_l2"], verdict_table(findings)
    assert all('row active_power_l2: word_order = "little"' in f.fix for f in wrong)    # one cause, both checks


def test_wrong_scale_is_found():
    fleet = _fleet(free_port())
    device_as_is = _variant(voltage_l1={"scale": 0.01}, current_l3={"scale": 0.01})   # profile says 0.1
    findings, _ = _commission(device_as_is, fleet, fleet)
    wrong = {f.channel: f for f in _wrong(findings)}
    assert "voltage_l1" in wrong and "scale = 0.01" in wrong["voltage_l1"].fix, verdict_table(findings)
    assert "active_power_l3" in wrong and "current_l3: scale = 0.01" in wrong["active_power_l3"].fix


def test_wrong_ct_ratio_is_found():
    port = free_port()
    real = _fleet(port, ct_ratio=40.0)            # the meter sits behind 200/5 A CTs
    configured = _fleet(port, ct_ratio=1.0)       # ... and the fleet file forgot it
    findings, _ = _commission(PROFILES[METER], real, configured)
    wrong = _wrong(findings)
    assert [f.check for f in wrong] == ["current vs rating"], verdict_table(findings)
    assert "ct_ratio" in wrong[0].fix and "secondary" in wrong[0].observed
    fitting = wrong[0].fix.split("ratios ")[1].split(" fit")[0].split("..")
    assert float(fitting[0]) <= 40.0 <= float(fitting[1])


def test_swapped_words_round_trip():
    reg = Register("energy_import", True, 10, "holding", "uint32", scale=10.0)
    v = np.array([10.0 * (3 * 65536 + 7)])
    assert swapped(reg, v)[0] == 10.0 * (7 * 65536 + 3)
    assert swapped(reg, swapped(reg, v))[0] == v[0]


def test_energy_balance_finds_a_scaled_counter():
    t = np.arange(0, 61, 1.0)
    samples = [Sample(float(x), {"active_power": 600_000.0, "energy_import": 1e6 + 600_000.0 * x / 3600 / 10})
               for x in t]
    reg = Register("energy_import", True, 10, "holding", "uint32", scale=10.0)
    findings = judge(samples, Context(registers={"energy_import": reg}))
    bal = next(f for f in findings if f.check == "ΔE = ∫P dt")
    assert bal.ok is False and "scale = 100" in bal.fix


def test_too_few_samples_is_an_error():
    with pytest.raises(ValueError):
        judge([Sample(0.0, {})], Context())


def test_command_prints_the_table_and_exits_1_on_a_misfit(tmp_path, capsys):
    """``energyhost commission DEVICE --fleet F --seconds N`` against the simulator (CT ratio forgotten)."""
    from energyhost import cli

    port = free_port()
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(f"""[[customer]]
id = "c1"
[[customer.site]]
id = "s1"
[[customer.site.transformer]]
id = "t1"
rated_kva = 1000
p0_kw = 1.4
pk_kw = 8.1
meter = "t1-meter"
[[customer.site.device]]
id = "t1-meter"
kind = "meter"
transport = "modbus"
profile = "{METER}"
host = "127.0.0.1"
port = {port}
""")
    rc = _serving(PROFILES[METER], _fleet(port, ct_ratio=40.0),
                  lambda: cli.main(["commission", "t1-meter", "--fleet", str(fleet_file), "--seconds", "4"]))
    out = capsys.readouterr().out
    assert rc == 1
    assert "current vs rating" in out and "WRONG" in out and "ct_ratio" in out and "1 check(s) do not fit" in out


def test_dlt645_meter_with_a_forgotten_ct_ratio_is_found():
    """DL/T 645 through the collector's own DL/T 645 poller: the CT ratio misfit is found there too."""
    from core.dlt645 import load_dlt645_profiles
    from simulators.dlt645_server import serve_dlt645

    profiles = load_dlt645_profiles()
    port = free_port()

    def fleet(ct: float):
        dev = {"id": "t1-meter", "kind": "meter", "transport": "dlt645", "profile": "meter_dlt645_2007",
               "address": "000012345678", "host": "127.0.0.1", "port": port, "ct_ratio": ct}
        site = {"id": "s1", "device": [dev],
                "transformer": [{"id": "t1", "rated_kva": 1000, "p0_kw": 1.4, "pk_kw": 8.1, "meter": "t1-meter"}]}
        return parse_fleet({"customer": [{"id": "c1", "site": [site]}]})

    real, configured = fleet(40.0), fleet(1.0)
    ready, stop, box = threading.Event(), threading.Event(), {}

    def serve():
        async def main():
            sim = await serve_dlt645(real, profiles, FleetSignals(real, seed=3).values, update_interval_s=0.2)
            ready.set()
            try:
                while not stop.is_set():
                    await asyncio.sleep(0.05)
            finally:
                await sim.stop()
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            box["error"] = exc
            ready.set()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    assert ready.wait(20) and "error" not in box, box
    try:
        findings, statuses = commission(configured, profiles, "t1-meter", 6.0, interval_s=1.0)
    finally:
        stop.set()
        th.join(20)
    assert "ok" in statuses
    wrong = _wrong(findings)
    assert [f.check for f in wrong] == ["current vs rating"], verdict_table(findings)
    assert "ct_ratio" in wrong[0].fix
    assert any(f.check == "level" and f.ok for f in findings)       # voltages judged too
