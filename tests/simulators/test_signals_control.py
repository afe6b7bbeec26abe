"""The fault-control HTTP server of the simulator."""

from __future__ import annotations

import pytest

from simulators.control import ControlError, ControlServer, _request, clear_remote, inject_remote, list_remote
from simulators.signals import FleetSignals


@pytest.fixture
def control(fleet):
    s = FleetSignals(fleet, seed=7)
    with ControlServer(s) as srv:
        assert srv.url.startswith("http://127.0.0.1:")
        yield s, srv.url


def test_control_inject_list_clear(control):
    s, url = control
    rec = inject_remote(url, "s1-pv1", "device_exceptions", {"code": 6})
    assert rec["device"] == "s1-pv1" and rec["params"] == {"code": 6} and rec["end"] is None
    assert s.behaviour("s1-pv1") == 6
    assert [f["fault"] for f in list_remote(url)] == ["device_exceptions"]
    inject_remote(url, "s1-main", "low_power_factor", {"pf": 0.7}, duration_s=3600)
    assert s.values("s1-main", __import__("time").time() + 1)["power_factor"] == pytest.approx(0.7)
    assert clear_remote(url, "s1-pv1", "device_exceptions") == 1
    assert s.behaviour("s1-pv1") == "normal"
    assert clear_remote(url, "s1-main") == 1
    assert list_remote(url) == []


@pytest.mark.parametrize("body, match", [
    ({"device": "ghost", "fault": "inverter_trip"}, "unknown device 'ghost'"),
    ({"device": "s1-pv1", "fault": "meltdown"}, "unknown fault 'meltdown'"),
    ({"device": "s1-main", "fault": "ev_fault"}, "does not apply to meter"),
    ({"device": "s1-pv1", "fault": "string_loss", "params": {"mppt": 0}}, "'mppt' must be in 1..4"),
    ({"device": "s1-pv1"}, "'fault' is required"),
    ({"device": "s1-pv1", "fault": "inverter_trip", "when": 1}, "unknown key 'when'"),
    ({"device": "s1-pv1", "fault": "inverter_trip", "duration_s": -5}, "'duration_s' must be > 0"),
    ({"device": "s1-pv1", "fault": "inverter_trip", "start": 1.0e9}, "'start' .* is in the past"),
])
def test_control_bad_input_is_400_naming_the_problem(control, body, match):
    _s, url = control
    with pytest.raises(ControlError, match=match) as exc:
        _request("POST", url + "/faults", body)
    assert exc.value.status == 400


def test_control_raw_http_errors(control):
    import urllib.error
    import urllib.request
    _s, url = control
    req = urllib.request.Request(url + "/faults", data=b"{not json", method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=5)
    assert exc.value.code == 400 and "not valid JSON" in exc.value.read().decode()
    with pytest.raises(ControlError, match="unknown device 'nobody'"):
        clear_remote(url, "nobody")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(url + "/nothing", timeout=5)
    assert exc.value.code == 404
    with urllib.request.urlopen(url + "/faults/types", timeout=5) as resp:
        types = __import__("json").loads(resp.read())["types"]
    assert types["voltage_sag"]["params"] == {"depth": 0.3, "phases": [1, 2, 3]}
