"""Fleet file validation: every error names the file, the device and the key."""

from pathlib import Path

import pytest

from core.channels import DEVICE_KINDS
from core.config import ConfigError, Settings, load_fleet, parse_fleet

ROOT = Path(__file__).resolve().parents[2]


def test_example_fleet_loads_with_all_kinds_and_transports():
    fleet = load_fleet(ROOT / "sites.example.toml")
    assert len(fleet.customers) == 2
    assert len(fleet.sites) == 3
    assert len(fleet.devices) >= 20
    assert {d.kind for d in fleet.devices.values()} == set(DEVICE_KINDS)
    assert {d.transport for d in fleet.devices.values()} == {"modbus", "mqtt", "dlt645", "ocpp"}
    gw = fleet.gateways["acme-plant1-gw1"]
    behind = [d for d in fleet.devices.values() if d.gateway == gw.id]
    assert len(behind) >= 3 and len({d.unit_id for d in behind}) == len(behind)
    d = fleet.device("acme-plant1-pv3")
    assert d.tags == {"customer": "acme", "site": "acme-plant1", "device": "acme-plant1-pv3"}
    assert d.topic == "eh/v1/acme-plant1/acme-plant1-pv3/telemetry"
    assert fleet.customer_of_site("huadong-coldstore").id == "huadong"


def _fleet(device: dict, site_extra: dict | None = None) -> dict:
    site = {"id": "s1", "device": [device], **(site_extra or {})}
    return {"customer": [{"id": "c1", "site": [site]}]}


MODBUS = {"id": "d1", "kind": "meter", "transport": "modbus", "profile": "p", "host": "127.0.0.1", "port": 502}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"kind": "toaster"}, ["device 'd1'", "'kind'", "toaster"]),
        ({"transport": "bacnet"}, ["device 'd1'", "'transport'"]),
        ({"port": 70000}, ["device 'd1'", "'port'", "70000"]),
        ({"port": "502"}, ["device 'd1'", "'port'", "expected int"]),
        ({"unit_id": 300}, ["device 'd1'", "'unit_id'"]),
        ({"poll_interval_s": 0}, ["device 'd1'", "'poll_interval_s'"]),
        ({"pol_interval_s": 5}, ["device 'd1'", "'pol_interval_s'", "unknown key"]),
        ({"id": "Bad Id"}, ["'id'", "Bad Id"]),
        ({"profile": None}, ["device 'd1'", "'profile'", "required"]),
        ({"host": None}, ["device 'd1'", "'host'", "required"]),
        ({"gateway": "nope", "host": None, "port": None}, ["device 'd1'", "'gateway'", "nope"]),
        ({"ct_ratio": 0.5}, ["device 'd1'", "'ct_ratio'", "1..100000", "0.5"]),
        ({"pt_ratio": "100"}, ["device 'd1'", "'pt_ratio'", "expected float"]),
        ({"kind": "transformer", "ct_ratio": 40}, ["device 'd1'", "'ct_ratio'", "Modbus and DL/T 645 meters only", "transformer"]),
        ({"transport": "mqtt", "host": None, "port": None, "pt_ratio": 100},
         ["device 'd1'", "'pt_ratio'", "Modbus and DL/T 645 meters only", "mqtt meter"]),
    ],
)
def test_bad_device_is_named_with_file_and_key(change, words):
    dev = {k: v for k, v in {**MODBUS, **change}.items() if v is not None}
    with pytest.raises(ConfigError) as err:
        parse_fleet(_fleet(dev), "fleet.toml")
    msg = str(err.value)
    assert msg.startswith("fleet.toml: ")
    for w in words:
        assert w in msg


def test_instrument_transformer_ratios_on_a_meter():
    fleet = parse_fleet(_fleet({**MODBUS, "ct_ratio": 40, "pt_ratio": 100.0}), "fleet.toml")
    d = fleet.devices["d1"]
    assert (d.ct_ratio, d.pt_ratio) == (40.0, 100.0)
    plain = parse_fleet(_fleet(MODBUS), "fleet.toml").devices["d1"]
    assert (plain.ct_ratio, plain.pt_ratio) == (1.0, 1.0)


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"device 'd1'.*'profile'.*unknown profile 'p'.*known: \['meter_x'\]"):
        parse_fleet(_fleet(MODBUS), "f.toml", known_profiles={"meter_x"})


def test_duplicate_ids_and_endpoints_refused():
    raw = _fleet(MODBUS)
    raw["customer"][0]["site"][0]["device"].append({**MODBUS, "id": "d2"})
    with pytest.raises(ConfigError, match="same host/port/unit id as device 'd1'"):
        parse_fleet(raw)
    raw["customer"][0]["site"][0]["device"][1] = {**MODBUS}
    with pytest.raises(ConfigError, match="duplicate id 'd1'"):
        parse_fleet(raw)


def test_bad_site_values():
    with pytest.raises(ConfigError, match="site 's1'.*'timezone'.*Mars/Olympus"):
        parse_fleet(_fleet(MODBUS, {"timezone": "Mars/Olympus"}))
    with pytest.raises(ConfigError, match="site 's1'.*'pf_standard'"):
        parse_fleet(_fleet(MODBUS, {"pf_standard": 0.95}))
    tr = {"id": "t1", "rated_kva": 1000, "p0_kw": 1.2, "pk_kw": 8, "meter": "ghost"}
    with pytest.raises(ConfigError, match="transformer 't1'.*'meter'.*ghost"):
        parse_fleet(_fleet(MODBUS, {"transformer": [tr]}))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_fleet(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[customer]\nid=1")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_fleet(bad)
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="no \\[\\[customer\\]\\]"):
        load_fleet(empty)


def test_settings_from_env_reads_secret_files(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    s = Settings.from_env({"EH_INFLUX_URL": "http://127.0.0.1:9999", "EH_INFLUX_PASSWORD_FILE": str(secret),
                           "EH_MQTT_PORT": "18830"})
    assert (s.influx_url, s.influx_password, s.mqtt_port) == ("http://127.0.0.1:9999", "s3cret", 18830)
    with pytest.raises(ConfigError, match="EH_MQTT_PORT"):
        Settings.from_env({"EH_MQTT_PORT": "abc"})


def test_spool_cap_from_env():
    assert Settings.from_env({}).spool_max_bytes == 2**30
    assert Settings.from_env({"EH_SPOOL_MAX_BYTES": str(16 * 2**30)}).spool_max_bytes == 16 * 2**30
    with pytest.raises(ConfigError, match="EH_SPOOL_MAX_BYTES"):
        Settings.from_env({"EH_SPOOL_MAX_BYTES": "lots"})
