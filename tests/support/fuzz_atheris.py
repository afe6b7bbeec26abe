"""atheris (libFuzzer) harness for the MQTT payload parser and the Modbus block decoder.

Run::

    .venv/bin/python tests/support/fuzz_atheris.py parse_payload -atheris_runs=100000
    .venv/bin/python tests/support/fuzz_atheris.py decoder -atheris_runs=100000

Coverage-guided: the energyhost modules are instrumented at import.  A target fails (and
libFuzzer writes a crash-* reproducer) if the code under test raises, or if a result breaks
its contract: parsed points carry only finite numbers of glossary channels, rejects name a
known reason; decoded values are finite floats of the block's channel rows.  libFuzzer prints
``Done N runs in T second(s)`` at the end (the count tests/core/test_fuzz.py reports).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports(include=["collector", "core"]):
    from collector.mqtt import REASONS, parse_payload
    from core.channels import CHANNELS
    from core.config import load_fleet
    from core.profiles import load_profiles, sunspec_layout

ROOT = Path(__file__).resolve().parents[2]
FLEET = load_fleet(ROOT / "sites.example.toml")
NOW_NS = 1_750_000_000 * 10**9
MQTT_DEVICES = [d for d in FLEET.devices.values() if d.transport == "mqtt"]
TOPICS = ([f"eh/v1/{d.site_id}/{d.id}/telemetry" for d in MQTT_DEVICES]
          + [f"eh/v1/{d.site_id}/{d.id}/status" for d in MQTT_DEVICES]
          + [f"eh/v1/{s}/gateway/{s}-mqttgw/batch" for s in FLEET.sites]
          + [f"eh/v1/{s}/gateway/{s}-mqttgw/status" for s in FLEET.sites])
BLOCKS = [b for p in load_profiles().values()
          for b in p.plan(sunspec_layout(p)[0] if p.protocol == "sunspec" else None)]


CHANNEL_NAMES = sorted(CHANNELS)
DEVICE_IDS = [d.id for d in FLEET.devices.values()]


def _value(fdp: atheris.FuzzedDataProvider):
    pick = fdp.ConsumeIntInRange(0, 6)
    if pick == 0:
        return fdp.ConsumeRegularFloat()
    if pick == 1:
        return fdp.ConsumeFloat()                   # may be NaN / ±Inf
    if pick == 2:
        return fdp.ConsumeInt(9)                    # beyond float range sometimes
    if pick == 3:
        return fdp.ConsumeUnicodeNoSurrogates(8)
    if pick == 4:
        return fdp.ConsumeBool()
    if pick == 5:
        return None
    return [fdp.ConsumeRegularFloat()]


def _reading(fdp: atheris.FuzzedDataProvider) -> dict:
    r: dict = {}
    if fdp.ConsumeIntInRange(0, 7):
        r["device"] = DEVICE_IDS[fdp.ConsumeIntInRange(0, len(DEVICE_IDS) - 1)]
    if fdp.ConsumeIntInRange(0, 7):
        r["ts"] = NOW_NS // 10**6 + fdp.ConsumeIntInRange(-40 * 86400_000, 600_000) \
            if fdp.ConsumeBool() else _value(fdp)
    if fdp.ConsumeIntInRange(0, 7):
        r["values"] = {(CHANNEL_NAMES[fdp.ConsumeIntInRange(0, len(CHANNEL_NAMES) - 1)]
                        if fdp.ConsumeIntInRange(0, 5) else fdp.ConsumeUnicodeNoSurrogates(6)): _value(fdp)
                       for _ in range(fdp.ConsumeIntInRange(0, 6))}
    return r


def _doc(fdp: atheris.FuzzedDataProvider):
    if fdp.ConsumeBool():
        return {"readings": [_reading(fdp) for _ in range(fdp.ConsumeIntInRange(0, 4))]}
    if fdp.ConsumeBool():
        return {"online": _value(fdp), "devices": [DEVICE_IDS[fdp.ConsumeIntInRange(0, len(DEVICE_IDS) - 1)]]}
    return _reading(fdp)


def fuzz_parse_payload(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    k = fdp.ConsumeIntInRange(0, len(TOPICS))
    topic = TOPICS[k] if k < len(TOPICS) else fdp.ConsumeUnicodeNoSurrogates(40)
    if fdp.ConsumeBool():       # structured: near-valid documents reach the per-reading checks
        payload = json.dumps(_doc(fdp), allow_nan=True).encode()
    else:
        payload = fdp.ConsumeBytes(fdp.remaining_bytes())
    points, rejects = parse_payload(topic, payload, FLEET, NOW_NS)
    for p in points:
        for ch, v in p.fields.items():
            if p.measurement != "collector_status":
                assert ch in CHANNELS and isinstance(v, float) and math.isfinite(v), (ch, v)
    for r in rejects:
        assert r.reason in REASONS, r


def fuzz_decoder(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    b = BLOCKS[fdp.ConsumeIntInRange(0, len(BLOCKS) - 1)]
    words = [fdp.ConsumeIntInRange(0, 0xFFFF) for _ in range(b.count)]
    out = b.decode(words)
    keys = {r.key for r in b.registers if r.is_channel}
    for k, v in out.items():
        assert k in keys and isinstance(v, float) and math.isfinite(v), (k, v)


TARGETS = {"parse_payload": fuzz_parse_payload, "decoder": fuzz_decoder}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(TARGETS)}}} [libFuzzer options, e.g. -atheris_runs=N]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
