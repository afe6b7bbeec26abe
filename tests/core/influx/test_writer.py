"""core.influx.Writer against real influxd: batching, outage + spool replay, 400, 413, 401, restart."""

from __future__ import annotations

import json
import threading
import time

import pytest

from core.influx import InfluxClient, Writer
from core.model import Point

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000_000_000


def _points(n: int, start: int = 0, device: str = "d1") -> list[Point]:
    return [Point("meter", {"customer": "c", "site": "s", "device": device},
                  {"active_power": float(i), "voltage_l1": 230.0 + i % 7}, T0 + i * 1_000_000)
            for i in range(start, start + n)]


def _count(client: InfluxClient, measurement: str = "meter") -> int:
    s = client.query(f'SELECT count("active_power") FROM "{measurement}"')
    return s[0]["values"][0][1] if s else 0


def _invariant(st: dict) -> bool:
    return st["received"] == st["written"] + st["pending"] + st["rejected"] + st["dropped"]


class _InvariantWatch:
    """Samples Writer.stats() in a thread; records any sample where the invariant fails."""

    def __init__(self, writer: Writer) -> None:
        self.writer, self.bad, self.samples = writer, [], 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            st = self.writer.stats()
            self.samples += 1
            if not _invariant(st):
                self.bad.append(st)
            time.sleep(0.002)

    def stop(self) -> None:
        self._stop.set()
        self._t.join()


def test_batches_and_callbacks(influxd, influx_db, tmp_path):
    client = InfluxClient(influxd.url, influx_db)
    w = Writer(client, tmp_path / "spool", batch_size=500, flush_interval_s=0.05)
    done = []
    for k in range(40):
        w.submit(_points(50, start=k * 50), on_durable=lambda k=k: done.append(k))
    assert w.flush(10)
    assert sorted(done) == list(range(40))
    st = w.stats()
    assert st["received"] == st["written"] == 2000 and st["pending"] == 0 and _invariant(st)
    assert _count(client) == 2000
    w.submit([])                               # nothing to do, no error
    w.close()
    with pytest.raises(RuntimeError, match="closed"):
        w.submit(_points(1))



def test_after_durable_hook_follows_each_batch_of_callbacks(influxd, influx_db, tmp_path):
    """The hook runs after the on_durable callbacks of a written batch (the collector sends the
    PUBACKs those callbacks queued, at once), and after an inline callback (nothing to write)."""
    w = Writer(InfluxClient(influxd.url, influx_db), tmp_path / "spool", batch_size=10_000, flush_interval_s=60)
    events: list[str] = []
    w.add_after_durable(lambda: events.append("hook"))
    for k in range(3):
        w.submit(_points(10, start=k * 10), on_durable=lambda k=k: events.append(f"cb{k}"))
    assert events == []                        # buffered, not yet written
    assert w.flush(10)
    assert wait_for_events(events, 4) and sorted(events[:3]) == ["cb0", "cb1", "cb2"] and events[3:] == ["hook"]
    w.submit([], on_durable=lambda: events.append("empty"))
    assert events[4:] == ["empty", "hook"]
    w.close()


def wait_for_events(events: list, n: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while len(events) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(events) >= n


def test_rejected_points_are_dead_lettered_and_acked(influxd, influx_db, tmp_path):
    client = InfluxClient(influxd.url, influx_db)
    with Writer(client, tmp_path / "spool", flush_interval_s=0.05) as w:
        done = threading.Event()
        bad = Point("meter", {"device": "evil\nmeter,device=x v=1"}, {"active_power": 1.0}, T0)
        nan = Point("meter", {"device": "d"}, {"active_power": float("nan")}, T0)
        w.submit([bad, nan, *_points(3)], on_durable=done.set)
        assert done.wait(5)
        st = w.stats()
        assert st["rejected"] == 2 and st["written"] == 3 and st["nonfinite_fields_dropped"] == 1
        assert _invariant(st)
    dl = [json.loads(x) for x in (tmp_path / "spool" / "deadletter.jsonl").read_text().splitlines()]
    assert len(dl) == 2 and "backslash or line break" in dl[0]["reason"] and "NaN" in dl[1]["reason"]
    assert _count(client) == 3


def test_outage_spools_then_replays_everything_once(dedicated_influxd, tmp_path):
    d = dedicated_influxd
    client = InfluxClient(d.url, "outage", timeout=2.0)
    client.create_database()
    w = Writer(client, tmp_path / "spool", batch_size=200, flush_interval_s=0.05, retry_max_s=0.5)
    watch = _InvariantWatch(w)
    acked = []
    total, per = 3000, 50

    def produce():
        for k in range(total // per):
            w.submit(_points(per, start=k * per), on_durable=lambda k=k: acked.append(k))
            time.sleep(0.004)

    prod = threading.Thread(target=produce)
    prod.start()
    time.sleep(0.15)
    d.stop()                                  # InfluxDB down mid-stream
    time.sleep(1.5)
    assert w.stats()["spooled"] > 0           # readings are going to disk...
    prod.join()
    assert w.flush(10)
    assert len(acked) == total // per         # ...and were acked once durable in the spool
    st = w.stats()
    assert st["spool_appends"] > 0 and st["write_errors"] > 0
    d.start()                                 # back: the spool drains in order
    assert w.drain(30), w.stats()
    watch.stop()
    assert watch.samples > 100 and watch.bad == []
    st = w.stats()
    assert st["received"] == st["written"] == total and st["dropped"] == st["rejected"] == 0
    assert st["spooled_bytes"] == 0
    assert _count(client) == total            # none lost, none duplicated (same key = same point)
    got = client.query('SELECT "active_power" FROM meter')
    assert [r[1] for r in got[0]["values"]] == [float(i) for i in range(total)]
    w.close()


def test_spool_survives_restart(dedicated_influxd, tmp_path):
    d = dedicated_influxd
    client = InfluxClient(d.url, "restart", timeout=2.0)
    client.create_database()
    d.stop()
    w = Writer(client, tmp_path / "spool", flush_interval_s=0.05)
    w.submit(_points(700))
    assert w.flush(10)
    assert w.stats()["spooled"] == 700
    w.close()                                 # process ends with data in the spool
    d.start()
    w2 = Writer(client, tmp_path / "spool", flush_interval_s=0.05)
    assert w2.stats()["recovered"] == 700
    assert w2.drain(20)
    st = w2.stats()
    assert st["written"] == 700 and _invariant(st)
    w2.close()
    w3 = Writer(client, tmp_path / "spool")   # replayed records are not replayed again
    assert w3.stats()["recovered"] == 0
    w3.close()
    assert _count(client) == 700


def test_partial_write_quarantines_only_bad_points(influxd, influx_db, tmp_path):
    client = InfluxClient(influxd.url, influx_db)
    client.write_lines(b"meter,customer=c,device=d1,site=s active_power=1.0 1")  # field is float
    pts = _points(100)
    for i in (7, 55, 56, 99):      # integer for a float field: field type conflict
        pts[i] = pts[i]._replace(fields={"active_power": i})
    with Writer(client, tmp_path / "spool", batch_size=1000, flush_interval_s=0.05) as w:
        w.submit(pts)
        assert w.flush(20)
        st = w.stats()
    assert st["written"] == 96 and st["rejected"] == 4 and st["quarantined_400"] == 4 and _invariant(st)
    dl = [json.loads(x) for x in (tmp_path / "spool" / "deadletter.jsonl").read_text().splitlines()]
    assert sorted(int(x["line"].split("=")[-1].split("i")[0]) for x in dl) == [7, 55, 56, 99]
    assert all("field type conflict" in x["reason"] for x in dl)
    assert _count(client) == 96 + 1


def test_413_splits_batch(make_influxd, tmp_path):
    d = make_influxd(max_body_size=4000)
    client = InfluxClient(d.url, "small")
    client.create_database()
    with Writer(client, tmp_path / "spool", batch_size=1000, flush_interval_s=0.05) as w:
        w.submit(_points(600))
        assert w.flush(20)
        st = w.stats()
    assert st["split_413"] > 0 and st["written"] == 600 and st["spooled"] == 0 and _invariant(st)
    assert _count(client) == 600


def test_auth_failure_keeps_spooling(make_influxd, tmp_path):
    d = make_influxd(auth=True)
    d.add_user("w", "right", database="authw", privilege="WRITE")
    bad = InfluxClient(d.url, "authw", username="w", password="rotated")
    with Writer(bad, tmp_path / "spool", flush_interval_s=0.05, retry_max_s=0.2) as w:
        w.submit(_points(100))
        assert w.flush(10)
        deadline = time.monotonic() + 10      # a few replay attempts, all refused
        while w.stats()["auth_failures"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        st = w.stats()
        assert st["auth_failures"] >= 2 and st["spooled"] == 100 and st["dropped"] == 0 and _invariant(st)
    good = InfluxClient(d.url, "authw", username="w", password="right")
    with Writer(good, tmp_path / "spool", flush_interval_s=0.05) as w2:   # credentials fixed
        assert w2.drain(10)
        assert w2.stats()["written"] == 100
    d.add_user("r", "r", database="authw", privilege="READ")
    assert _count(InfluxClient(d.url, "authw", username="r", password="r")) == 100


def test_spool_cap_drops_oldest_counted(dedicated_influxd, tmp_path):
    d = dedicated_influxd
    client = InfluxClient(d.url, "cap", timeout=1.0)
    client.create_database()
    d.stop()
    with Writer(client, tmp_path / "spool", batch_size=100, flush_interval_s=0.02,
                spool_max_bytes=40_000) as w:
        for k in range(20):
            w.submit(_points(100, start=k * 100))
            assert w.flush(10)
        st = w.stats()
        assert st["dropped"] > 0 and st["spooled_bytes"] <= 40_000 and _invariant(st)
        d.start()
        assert w.drain(20)
        st = w.stats()
        assert _invariant(st) and st["written"] == 2000 - st["dropped"]
    s = client.query('SELECT first("active_power") FROM meter')
    assert s[0]["values"][0][1] == float(st["dropped"])      # the oldest were the ones dropped


def test_corrupt_spool_record_is_quarantined_and_the_rest_replayed(dedicated_influxd, tmp_path):
    d = dedicated_influxd
    client = InfluxClient(d.url, "corrupt", timeout=1.0)
    client.create_database()
    d.stop()
    with Writer(client, tmp_path / "spool", batch_size=100, flush_interval_s=0.02) as w:
        for k in range(3):                    # three spool records of 100 points
            w.submit(_points(100, start=k * 100))
            assert w.flush(10)
        assert w.stats()["spool_records"] == 3
    seg = next((tmp_path / "spool").glob("*.seg"))
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0xFF               # inside the middle record's payload
    seg.write_bytes(bytes(data))
    d.start()
    with Writer(client, tmp_path / "spool", flush_interval_s=0.02) as w2:
        st = w2.stats()
        assert st["recovered"] == 200 and st["spool_corrupt_records"] == 1   # intact records; one quarantined
        assert st["spool_corrupt_points_at_open"] == 100
        assert w2.drain(20)
        st = w2.stats()
        assert st["written"] == 200 and _invariant(st)
    assert list((tmp_path / "spool" / "quarantine").glob("*.bad"))
    assert _count(client) == 200
    got = [r[1] for r in client.query('SELECT "active_power" FROM meter')[0]["values"]]
    assert got == [float(i) for i in [*range(100), *range(200, 300)]]


def test_spool_write_error_retries_without_loss(dedicated_influxd, tmp_path):
    """ENOSPC on the spool (injected once): the batch is neither acked nor lost, and is retried."""
    import errno

    d = dedicated_influxd
    client = InfluxClient(d.url, "enospc", timeout=1.0)
    client.create_database()
    d.stop()
    w = Writer(client, tmp_path / "spool", flush_interval_s=0.02, retry_max_s=0.2)
    real_append, calls = w.spool.append, []

    def append_failing_once(payload, n):
        calls.append(n)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_append(payload, n)
    w.spool.append = append_failing_once
    acked, calls_at_ack = threading.Event(), []
    w.submit(_points(50), on_durable=lambda: (calls_at_ack.append(len(calls)), acked.set()))
    assert acked.wait(10) and calls_at_ack == [2]     # durable (acked) only after the retry succeeded
    st = w.stats()
    assert st["spool_errors"] == 1 and st["spooled"] == 50 and _invariant(st)
    d.start()
    assert w.drain(20)
    assert w.stats()["written"] == 50 and _count(client) == 50
    w.close()


def test_resubmitting_the_same_points_is_idempotent(influxd, influx_db, tmp_path):
    client = InfluxClient(influxd.url, influx_db)
    with Writer(client, tmp_path / "spool", flush_interval_s=0.02) as w:
        for _ in range(2):                     # a replay / QoS 1 redelivery of everything
            w.submit(_points(1000))
            assert w.flush(10)
        assert w.stats()["written"] == 2000
    assert _count(client) == 1000
    rows = client.query('SELECT sum("active_power"), sum("voltage_l1") FROM meter')[0]["values"][0]
    assert rows[1:] == [float(sum(range(1000))), sum(230.0 + i % 7 for i in range(1000))]
