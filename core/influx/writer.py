"""The :class:`Writer`: batching, spooling and accounting of points on their way to ``/write``.

Writer accounting (``Writer.stats()``), true at every instant::

    received = written + pending + rejected + dropped

``pending`` = buffered + in flight + spooled; ``rejected`` = points that cannot be stored
(encoding errors, 400 quarantined; each with a dead-letter line); ``dropped`` = spool byte cap
(oldest first) and spool records found corrupt.  What the cap drops is also counted per site and
device in ``<spool>/dropped.json`` (:class:`core.spool.DropLedger`), logged as an ERROR and
written as ``ingest_health`` points once InfluxDB answers; the analytics raise a critical
``readings_dropped`` alarm from them (reliability.md §1).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from core.deadletter import DEFAULT_MAX_BYTES as DEFAULT_DEADLETTER_MAX_BYTES
from core.deadletter import DeadLetterFile
from core.influx.client import InfluxClient
from core.influx.errors import InfluxWriteError
from core.influx.lineprotocol import encode_points, points_to_lines
from core.model import Point
from core.spool import DropLedger, Spool

log = logging.getLogger("energyhost.influx")

INGEST_HEALTH = "ingest_health"      # measurement of the Writer's drop records (analytics raises the alarm)


class _Ticket:
    __slots__ = ("remaining", "callback")

    def __init__(self, remaining: int, callback: Callable[[], None] | None) -> None:
        self.remaining = remaining
        self.callback = callback


_PARSE_ERR = re.compile(r"unable to parse '((?:[^'\\]|\\.)*)': ([^\n]*)")


class Writer:
    """Batching, spooling, accounted writer of :class:`~core.model.Point` to InfluxDB.

    ``submit()`` is thread-safe and never blocks on the network; a background thread writes
    batches of ``batch_size`` lines or every ``flush_interval_s``.  On 5xx, timeouts, refused
    connections, 401/403 and other non-400 answers the batch is appended to the fsync'ed
    :class:`~core.spool.Spool` and replayed in order (with capped backoff) once InfluxDB
    answers; while the spool is not empty new batches queue behind it.  A 400 (partial write)
    quarantines only the bad lines (dead-letter file ``deadletter.jsonl`` with the reason);
    a 413 splits the batch in halves.  ``on_durable`` is called once every point of that
    ``submit`` is written, spooled, or dead-lettered — i.e. safe to acknowledge upstream.

    A spool left by a previous process is replayed at start; its points count as received.
    """

    def __init__(self, client: InfluxClient, spool_dir: str | os.PathLike, *, batch_size: int = 5000,
                 flush_interval_s: float = 1.0, spool_max_bytes: int = 2**30, retry_max_s: float = 5.0,
                 spool_fsync: bool = True, deadletter_max_bytes: int = DEFAULT_DEADLETTER_MAX_BYTES) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be > 0, got {flush_interval_s}")
        self.client = client
        self.batch_size = int(batch_size)
        self.flush_interval_s = float(flush_interval_s)
        self.retry_max_s = float(retry_max_s)
        self.spool_dir = Path(spool_dir)
        # what the byte cap drops is counted per site/device in <spool>/dropped.json, logged as an
        # ERROR at once and recorded in InfluxDB (measurement ingest_health) as soon as it answers
        self.drops = DropLedger(self.spool_dir, fsync=spool_fsync)
        if self.drops.load_error:
            log.error("spool %s: drop ledger %s", self.spool_dir, self.drops.load_error)
        if self.drops.unrecorded_points:
            log.error("spool %s: %d readings dropped by the spool cap before this start are not recorded in "
                      "InfluxDB yet; recording them when it answers", self.spool_dir, self.drops.unrecorded_points)
        self._drop_retry_at = 0.0
        self._drop_log_at = 0.0
        self._drop_log_acc: dict[tuple[str, str], int] = {}
        self.spool = Spool(self.spool_dir, max_bytes=spool_max_bytes, fsync=spool_fsync, on_drop=self._on_spool_drop)
        self.deadletter_path = self.spool_dir / "deadletter.jsonl"
        self.deadletter = DeadLetterFile(self.deadletter_path, max_bytes=deadletter_max_bytes)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._buf: list[bytes] = []
        self._tickets: list[_Ticket] = []
        self._after_durable: list[Callable[[], None]] = []
        self._buf_since = 0.0
        self._flush_requested = False
        self._closing = False
        self._inflight = 0
        self._spooled = self.spool.pending_points
        self._retry_at = 0.0
        self._backoff = 0.0
        self._c = {"received": self.spool.recovered_points, "written": 0, "rejected": 0, "dropped": 0,
                   "recovered": self.spool.recovered_points, "nonfinite_fields_dropped": 0,
                   "quarantined_400": 0, "split_413": 0, "auth_failures": 0, "write_errors": 0,
                   "batches_written": 0, "spool_appends": 0, "spool_errors": 0,
                   # found at open: quarantined, not counted as received (their count may be unknown)
                   "spool_corrupt_records": self.spool.corrupt_records,
                   "spool_corrupt_points_at_open": self.spool.corrupt_points}
        self._thread = threading.Thread(target=self._run, name="influx-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public API
    def submit(self, points: Iterable[Point], on_durable: Callable[[], None] | None = None) -> None:
        """Queue points for writing; ``on_durable()`` fires once all of them are durable."""
        if type(points) is not list:
            points = list(points)
        enc = encode_points(points)
        if enc.rejected:
            self._dead_letter([(repr(p), why) for p, why in enc.rejected])
        with self._lock:        # the Condition's own lock (a plain `with` is cheaper than the Condition's)
            if self._closing:
                raise RuntimeError("Writer is closed")
            c = self._c
            c["received"] += len(points)
            if enc.rejected:
                c["rejected"] += len(enc.rejected)
            if enc.nonfinite_dropped:
                c["nonfinite_fields_dropped"] += enc.nonfinite_dropped
            if enc.lines:
                if not self._buf:
                    self._buf_since = time.monotonic()
                ticket = _Ticket(len(enc.lines), on_durable)
                self._buf.extend(enc.lines)
                self._tickets.extend([ticket] * len(enc.lines))
                if len(self._buf) >= self.batch_size or len(self._buf) == len(enc.lines):
                    self._cond.notify()
                return
        if on_durable is not None:
            self._call(on_durable)
            self._after_callbacks()

    def add_after_durable(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` after each group of ``on_durable`` callbacks (one per written batch), so
        that a caller can send what those callbacks queued at once (the MQTT collector's acks)."""
        self._after_durable.append(hook)

    def _after_callbacks(self) -> None:
        for hook in self._after_durable:
            self._call(hook)

    def stats(self) -> dict[str, int]:
        """Counters; ``received == written + pending + rejected + dropped`` always holds."""
        with self._lock:
            s = dict(self._c)
            s["buffered"] = len(self._buf)
            s["inflight"] = self._inflight
            s["spooled"] = self._spooled
            s["pending"] = len(self._buf) + self._inflight + self._spooled
            s["spooled_bytes"] = self.spool.pending_bytes
            s["spool_records"] = len(self.spool)
            s["spool_max_bytes"] = self.spool.max_bytes
            s["drops_unrecorded"] = self.drops.unrecorded_points
            s["drops_total"] = int(self.drops.state["dropped_total"])
        return s

    def flush(self, timeout: float = 10.0) -> bool:
        """Write or spool everything submitted so far; True if done within ``timeout`` [s]."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_requested = True
            self._cond.notify_all()
            while self._buf or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is pending (buffer written and spool replayed); True if so."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_requested = True
            self._cond.notify_all()
            while self._buf or self._inflight or self._spooled:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._retry_at = min(self._retry_at, time.monotonic() + 0.2)
                self._cond.notify_all()
                self._cond.wait(min(left, 0.05))
            return True

    def close(self, timeout: float = 10.0) -> None:
        """Flush (writing or spooling), stop the thread, close the spool.  Idempotent."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        self.spool.close()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ background thread
    def _due(self, now: float) -> bool:
        return bool(self._buf) and (len(self._buf) >= self.batch_size or self._flush_requested
                                    or self._closing or now - self._buf_since >= self.flush_interval_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    if self._due(now):
                        break
                    if self._closing and not self._buf:
                        return
                    if self._spooled and now >= self._retry_at:
                        break
                    if self.drops.state["unrecorded"] and now >= self._drop_retry_at:
                        break
                    if not self._buf:
                        self._flush_requested = False
                    waits = []
                    if self._buf:
                        waits.append(self._buf_since + self.flush_interval_s - now)
                    if self._spooled:
                        waits.append(self._retry_at - now)
                    if self.drops.state["unrecorded"]:
                        waits.append(self._drop_retry_at - now)
                    self._cond.wait(max(0.001, min(waits)) if waits else 0.5)
                batch = tickets = None
                if self._due(now):
                    batch, tickets = self._buf[:self.batch_size], self._tickets[:self.batch_size]
                    del self._buf[:self.batch_size], self._tickets[:self.batch_size]
                    self._buf_since = now
                    self._inflight += len(batch)
                spool_busy = self._spooled > 0 or now < self._retry_at
                replay = self._spooled > 0 and now >= self._retry_at
                record_drops = bool(self.drops.state["unrecorded"]) and now >= self._drop_retry_at
            try:
                if batch is not None:
                    self._handle_batch(batch, tickets, spool_busy)
                if replay:       # one record per round, so a steady input never starves the replay
                    self._replay_one()
                if record_drops:
                    self._record_drops()
            except Exception:  # noqa: BLE001 - the writer thread must survive anything
                log.exception("influx writer: unexpected error (will retry)")
                time.sleep(0.1)

    def _handle_batch(self, batch: list[bytes], tickets: list[_Ticket], spool_busy: bool) -> None:
        if spool_busy:
            failed = batch
            written = quarantined = 0
        else:
            written, quarantined, failed = self._send(batch)
        if failed:
            try:
                dropped = self.spool.append(b"\n".join(failed), len(failed))
            except OSError as exc:
                # disk full / I/O error: nothing is durable, nothing is acked; the whole batch goes
                # back to the head of the buffer (lines already written are rewritten: idempotent)
                log.error("spool %s: cannot append (%s); retrying the batch", self.spool_dir, exc)
                with self._cond:
                    self._inflight -= len(batch)
                    self._buf[:0] = batch
                    self._tickets[:0] = tickets
                    self._c["spool_errors"] += 1
                    self._backoff = min(self.retry_max_s, max(0.2, self._backoff * 2))
                    self._retry_at = time.monotonic() + self._backoff
                    self._cond.notify_all()
                time.sleep(min(self._backoff, 0.5))
                return
        with self._cond:
            self._inflight -= len(batch)
            self._c["written"] += written
            self._c["rejected"] += quarantined
            if written:
                self._c["batches_written"] += 1
            if failed:
                self._c["spool_appends"] += 1
                self._spooled += len(failed) - dropped
                self._c["dropped"] += dropped
            self._cond.notify_all()
        self._release(tickets)

    def _on_spool_drop(self, records: list[tuple[bytes, int]]) -> None:
        """Spool callback (writer thread): the byte cap dropped ``records``; count, persist, alarm."""
        try:
            counts = self.drops.add(records, time.time_ns())
        except Exception as exc:  # noqa: BLE001 - must not undo the append; the Writer counters still count
            log.error("spool %s: dropped %d readings by the cap but cannot record which (%s)", self.spool_dir,
                      sum(n for _, n in records), exc)
            return
        for k, n in counts.items():
            self._drop_log_acc[k] = self._drop_log_acc.get(k, 0) + n
        if time.monotonic() >= self._drop_log_at:    # the first drop at once, then a summary every 10 s
            self._log_drops()

    def _log_drops(self) -> None:
        acc, self._drop_log_acc = self._drop_log_acc, {}
        self._drop_log_at = time.monotonic() + 10.0
        if not acc:
            return
        for (site, device), n in sorted(acc.items()):
            log.error("spool cap (%d bytes) reached: dropped the %d oldest readings of %s/%s (drop policy: oldest "
                      "first); %d dropped readings not yet recorded in InfluxDB", self.spool.max_bytes, n, site,
                      device, self.drops.unrecorded_points,
                      extra={"site": site if site != "-" else None, "device": device if device != "-" else None})

    def _record_drops(self) -> None:
        """Write the unrecorded drop counts as ``ingest_health`` points (straight to InfluxDB, never
        through the spool the cap is emptying); on success clear them from the ledger."""
        if self._drop_log_acc and time.monotonic() >= self._drop_log_at:
            self._log_drops()
        rows = [dict(r) for r in self.drops.state["unrecorded"].values()]
        now_ns = time.time_ns()
        body = points_to_lines(
            Point(INGEST_HEALTH, {"site": r["site"], "device": r["device"], "reason": "spool_cap"},
                  {"dropped_points": int(r["points"]), "first_drop_ns": int(r["first_ns"]),
                   "last_drop_ns": int(r["last_ns"])}, now_ns) for r in rows)
        try:
            self.client.write_lines(body)
        except InfluxWriteError as exc:
            self._drop_retry_at = time.monotonic() + max(0.2, self.retry_max_s)
            if exc.status == 400:          # not transient (e.g. a field type conflict): say so, retry slowly
                self._drop_retry_at = time.monotonic() + max(60.0, self.retry_max_s)
                log.error("InfluxDB refuses the drop record (%s); kept in %s, retrying in 60 s", exc, self.drops.path)
            else:
                log.debug("drop record not written yet (%s); retrying", exc)
            return
        self.drops.recorded(rows, now_ns)
        log.warning("recorded %d readings dropped by the spool cap in InfluxDB (%s): %s", sum(r["points"] for r in rows),
                  INGEST_HEALTH, ", ".join(f"{r['site']}/{r['device']}={r['points']}" for r in rows))

    def _replay_one(self) -> None:
        before = self.spool.corrupt_points, self.spool.corrupt_records
        rec = self.spool.peek()
        lost = self.spool.corrupt_points - before[0]
        if lost or self.spool.corrupt_records != before[1]:
            with self._cond:
                self._spooled -= lost
                self._c["dropped"] += lost
                self._c["spool_corrupt_records"] += self.spool.corrupt_records - before[1]
        if rec is None:
            with self._cond:
                self._spooled = self.spool.pending_points
            return
        payload, n = rec
        lines = payload.split(b"\n")
        written, quarantined, failed = self._send(lines, replay=True)
        if failed:
            return          # the record stays; lines already written will be rewritten (idempotent)
        self.spool.pop()
        with self._cond:
            self._spooled -= n
            self._c["written"] += written
            self._c["rejected"] += quarantined
            self._c["batches_written"] += 1
            self._cond.notify_all()

    def _send(self, lines: list[bytes], replay: bool = False) -> tuple[int, int, list[bytes]]:
        """Write ``lines``; return (written, quarantined, failed-retryable lines)."""
        written = quarantined = 0
        stack = [lines]
        while stack:
            part = stack.pop()
            try:
                self.client.write_lines(b"\n".join(part))
                written += len(part)
                self._backoff = 0.0
                continue
            except InfluxWriteError as exc:
                err = exc
            if err.status == 413:
                if len(part) > 1:
                    with self._lock:
                        self._c["split_413"] += 1
                    mid = len(part) // 2
                    stack += [part[mid:], part[:mid]]
                else:
                    self._quarantine(part, f"413 line larger than the server's max-body-size: {err.message}")
                    quarantined += 1
                continue
            if err.status == 400:
                w, q, rest = self._handle_400(part, err.message)
                written += w
                quarantined += q
                if rest:
                    mid = len(rest) // 2
                    stack += [rest[mid:], rest[:mid]] if len(rest) > 1 else [rest]
                continue
            # retryable or auth / unknown: keep everything left, back off
            with self._lock:
                self._c["write_errors"] += 1
                if err.status in (401, 403):
                    self._c["auth_failures"] += 1
            if err.status in (401, 403):
                log.error("InfluxDB refused our credentials (%s); spooling until fixed", err.status)
            else:
                log.warning("InfluxDB write failed, spooling: %s", err)
            self._backoff = min(self.retry_max_s, max(0.2, self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff
            failed = list(part)
            for p in stack:
                failed += p
            if replay:
                return 0, 0, failed
            return written, quarantined, failed
        return written, quarantined, []

    def _handle_400(self, part: list[bytes], message: str) -> tuple[int, int, list[bytes]]:
        """For a 400 answer to ``part``: (written, quarantined, lines still to bisect)."""
        if len(part) == 1:
            self._quarantine(part, f"400: {message}")
            return 0, 1, []
        # "partial write: unable to parse '<line>': why" names the bad lines exactly; the others
        # were stored by the server (measured on 1.6.7).
        if message.startswith("partial write") or message.startswith("unable to parse"):
            bad = {m.group(1).encode(): m.group(2) for m in _PARSE_ERR.finditer(message)}
            if bad and "field type conflict" not in message and message.startswith("partial write"):
                found = [ln for ln in part if ln in bad]
                if len(found) == len(bad):
                    for ln in found:
                        self._quarantine([ln], f"400: unable to parse: {bad[ln]}")
                    return len(part) - len(found), len(found), []
        return 0, 0, part     # bisect: halves are rewritten (idempotent) until the bad lines are alone

    def _quarantine(self, lines: list[bytes], reason: str) -> None:
        with self._lock:
            self._c["quarantined_400"] += len(lines) if reason.startswith("400") else 0
        self._dead_letter([(ln.decode(errors="replace"), reason) for ln in lines])

    def _dead_letter(self, items: list[tuple[str, str]]) -> None:
        now = time.time_ns()
        self.deadletter.append([{"time_ns": now, "reason": why, "line": line} for line, why in items])

    def _release(self, tickets: list[_Ticket]) -> None:
        done = []
        for t in tickets:
            t.remaining -= 1
            if t.remaining == 0 and t.callback is not None:
                done.append(t.callback)
        for cb in done:
            self._call(cb)
        if done:
            self._after_callbacks()

    @staticmethod
    def _call(cb: Callable[[], None]) -> None:
        try:
            cb()
        except Exception:  # noqa: BLE001 - a caller's callback must not kill the writer
            log.exception("on_durable callback failed")
