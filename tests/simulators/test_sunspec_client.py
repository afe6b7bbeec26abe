"""The simulated SunSpec inverter as an independent client sees it: pysunspec2 (the SunSpec Alliance's
own Python client) scans the model chain and reads every point of models 1, 103 and 160."""

import asyncio
import socket

import pytest
import sunspec2.modbus.client as sunspec_client  # pysunspec2, a dev dependency: never skipped

from core.config import parse_fleet
from core.profiles import load_profiles, sunspec_layout
from simulators.modbus_server import serve_fleet

PROFILES = load_profiles()
PROFILE = PROFILES["pv_inverter_sunspec"]
PHASES = {"current_l1": 27.8, "current_l2": 27.7, "current_l3": 27.9}
# points the simulator serves besides the profile's rows (identity, total current, counts, no event)
EXTRAS = {"Mn", "Md", "Vr", "SN", "DA", "A", "Evt2", "N", "ID", "IDStr"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _values() -> dict[str, float]:
    """A value for every channel of the profile (a sunny afternoon), the phases of the field report."""
    out = {}
    for r in PROFILE.resolve(sunspec_layout(PROFILE)[0]):
        if r.is_channel:
            out[r.key] = 12.0
    return out | PHASES | {"active_power": 19_000.0, "frequency": 50.01, "inverter_state": 4,
                           "energy_export": 123_456.0, "power_factor": 0.99}


def _scan(device_id: str, unit: int, modules: int | None = None) -> tuple[dict, dict[int, int]]:
    """Serve one inverter, scan it with pysunspec2; returns its models and the profile's addresses."""
    port = _port()
    fleet = parse_fleet({"customer": [{"id": "c", "site": [{"id": "s", "device": [
        {"id": device_id, "kind": "pv_inverter", "transport": "modbus", "profile": "pv_inverter_sunspec",
         "host": "127.0.0.1", "port": port, "unit_id": unit}]}]}]})
    layout = (40000, {160: modules}) if modules is not None else (40000, None)
    chain = sunspec_layout(PROFILE, *layout)[0]
    mapped = {a for r in PROFILE.resolve(chain) for a in range(r.address, r.end)}

    def client():
        dev = sunspec_client.SunSpecModbusClientDeviceTCP(slave_id=unit, ipaddr="127.0.0.1", ipport=port, timeout=5)
        try:
            dev.scan()
            return {mid: dev.models[mid][0] for mid in (1, 103, 160)}
        finally:
            dev.close()

    async def main():
        values = _values()
        sim = await serve_fleet(fleet, PROFILES, lambda d, t: values, sunspec={device_id: layout})
        try:
            return await asyncio.to_thread(client)
        finally:
            await sim.stop()

    return asyncio.run(main()), mapped


def _points(model):
    """(group name, point) of every point of ``model``, repeating groups included."""
    yield from ((None, p) for p in model.points.values())
    for name, groups in model.groups.items():
        for g in groups if isinstance(groups, list) else [groups]:
            yield from ((name, p) for p in g.points.values())


def test_common_model_names_the_device():
    models, _ = _scan("acme-plant1-pv1", unit=3)
    common = models[1]
    assert common.Mn.value and common.Md.value, "manufacturer and model served empty"
    assert common.SN.value == "acme-plant1-pv1"
    assert common.DA.value == 3


def test_total_current_is_the_sum_of_the_phases():
    inverter = _scan("pv1", unit=1)[0][103]
    phases = [inverter.AphA.cvalue, inverter.AphB.cvalue, inverter.AphC.cvalue]
    assert phases == pytest.approx(list(PHASES.values()))
    assert inverter.A.cvalue == pytest.approx(sum(PHASES.values()), abs=0.015)


@pytest.mark.parametrize("modules", [None, 2])
def test_mppt_model_counts_its_modules(modules):
    mppt = _scan("pv1", unit=1, modules=modules)[0][160]
    n = PROFILE.sunspec_models[-1].modules if modules is None else modules
    assert mppt.N.value == n == len(mppt.groups["module"])
    assert [m.ID.value for m in mppt.groups["module"]] == list(range(1, n + 1))


def test_unimplemented_points_read_not_implemented():
    """pysunspec2 reads a point as None when it holds its type's "not implemented" value (0xFFFF
    uint16/enum16, 0x8000 int16/sunssf, 0xFFFFFFFF uint32/bitfield32, 0 acc32/string): every point
    the simulator does not serve must read so, not as 0."""
    models, mapped = _scan("pv1", unit=1)
    served_wrongly = []
    for mid, model in models.items():
        for group, p in _points(model):
            name = p.pdef["name"]
            if name in ("ID", "L", "Pad") and group is None:
                continue
            implemented = model.model_addr + p.offset in mapped or name in EXTRAS
            if (p.value is not None) != implemented:
                served_wrongly.append(f"{mid}{'.' + group if group else ''}.{name}={p.value!r}")
    assert not served_wrongly
