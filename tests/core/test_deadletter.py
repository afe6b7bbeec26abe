"""core.deadletter: durable, size-bounded dead-letter files (real files in tmp_path)."""

from __future__ import annotations

import json

import pytest

from core.config import ConfigError, Settings
from core.deadletter import DeadLetterFile


def _records(f: DeadLetterFile) -> list[dict]:
    out = []
    for p in reversed(f.files()):                    # oldest first
        out += [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]
    return out


def test_rotation_bounds_the_disk_and_keeps_the_newest(tmp_path):
    f = DeadLetterFile(tmp_path / "dl.jsonl", max_bytes=4096, backups=2)
    for i in range(500):                             # ~100 bytes each: far more than 3 files hold
        f.append([{"i": i, "reason": "bad_json", "payload": "x" * 60 + "中"}])
    files = f.files()
    assert [p.name for p in files] == ["dl.jsonl", "dl.jsonl.1", "dl.jsonl.2"]
    assert all(p.stat().st_size <= 4096 for p in files)
    assert f.total_bytes() <= 3 * 4096 and f.rotations > 0
    got = [r["i"] for r in _records(f)]
    assert got == list(range(500 - len(got), 500)) and len(got) > 80     # contiguous, newest kept
    assert _records(f)[-1]["payload"].endswith("中")                      # UTF-8 kept as text


def test_no_backups_keeps_only_the_current_file(tmp_path):
    f = DeadLetterFile(tmp_path / "dl.jsonl", max_bytes=4096, backups=0)
    for i in range(200):
        f.append([{"i": i, "pad": "y" * 80}])
    assert f.files() == [tmp_path / "dl.jsonl"] and f.total_bytes() <= 4096
    assert _records(f)[-1]["i"] == 199


def test_write_errors_reach_the_caller(tmp_path):
    (tmp_path / "dl.jsonl").mkdir()                  # the file cannot be opened for append
    f = DeadLetterFile(tmp_path / "dl.jsonl")
    with pytest.raises(OSError):
        f.append([{"i": 1}])


@pytest.mark.parametrize(("kw", "match"), [({"max_bytes": 10}, "max_bytes"), ({"backups": -1}, "backups")])
def test_bad_limits_are_refused(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        DeadLetterFile(tmp_path / "dl.jsonl", **kw)


def test_setting_from_environment():
    assert Settings.from_env({"EH_DEADLETTER_MAX_BYTES": "1048576"}).deadletter_max_bytes == 1 << 20
    assert Settings.from_env({}).deadletter_max_bytes == Settings.deadletter_max_bytes
    with pytest.raises(ConfigError, match="EH_DEADLETTER_MAX_BYTES"):
        Settings.from_env({"EH_DEADLETTER_MAX_BYTES": "12"})


def test_writer_quarantine_is_bounded(tmp_path):
    """Points the Writer cannot encode go to its dead-letter file, which rotates like any other."""
    from core.influx import InfluxClient, Writer
    from core.model import Point
    w = Writer(InfluxClient("http://127.0.0.1:9", "db"), tmp_path / "spool", deadletter_max_bytes=4096)
    try:
        for i in range(300):        # a time that is not an int64: rejected at submit, never sent
            w.submit([Point("meter", {"device": f"d{i}"}, {"active_power": 1.0}, "not-a-time")])
        s = w.stats()
        assert s["received"] == s["rejected"] == 300 and s["pending"] == 0
        assert w.deadletter.total_bytes() <= 5 * 4096 and w.deadletter.rotations > 0
        last = json.loads(w.deadletter_path.read_text().splitlines()[-1])
        assert "d299" in last["line"] and "time_ns" in last["reason"]
    finally:
        w.close()
