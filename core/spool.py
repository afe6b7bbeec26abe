"""An fsync'ed, append-only on-disk spool of line-protocol batches.

The spool holds what could not be written to InfluxDB yet (outage, 5xx, timeouts, auth
failures) so that nothing accepted is lost; it is replayed oldest first.

Layout of ``directory``::

    000000000001.seg ...   segment files, append-only, records back to back
    cursor                 "<segment> <offset>" of the oldest unconsumed record (atomic rename)
    quarantine/            corrupt or truncated byte ranges, one file each, with a .why note

Record = 24-byte header + payload::

    magic b"EHSP" | version u8 | flags u8 | reserved u16 | n_points u32 | length u32 |
    payload crc32 u32 | header crc32 u32 (of the 20 bytes before it)          (little-endian)

Every :meth:`Spool.append` is ``fdatasync``'ed before it returns, so a caller may acknowledge
upstream afterwards.  At open, every segment is scanned: intact records are indexed (and
counted in :attr:`Spool.recovered_points`), a bad header is skipped by searching for the next
valid header, a payload whose CRC fails and a truncated tail are copied to ``quarantine/`` and
counted; the spool always opens.  Appends go to a new segment per process run.

Byte cap: when the unconsumed bytes would exceed ``max_bytes``, the oldest records are dropped
(never the newest), and counted in :attr:`Spool.dropped_points` — the policy of Telegraf's and
Fluent Bit's buffers (reliability.md §1, §3).  ``on_drop(records)`` (if given) receives the
``(payload, n_points)`` of every record an append drops, before the cursor that makes the drop
durable is written, so a caller can record what was lost first (the Writer alarms on it).

Not thread-safe: one thread (the writer's) owns a spool, and an exclusive ``flock`` on
``<directory>/lock`` keeps a second process (or Spool) out of the same directory; the kernel
releases it when the owner dies, even by SIGKILL.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

MAGIC = b"EHSP"
VERSION = 1
_HEADER = struct.Struct("<4sBBHIIII")
HEADER_SIZE = _HEADER.size        # 24
_HEAD_CRC = struct.Struct("<I")


class SpoolError(OSError):
    """The spool directory cannot be used (permissions, not a directory, ...)."""


class _Rec(NamedTuple):
    seq: int
    offset: int
    size: int           # header + payload [bytes]
    n_points: int


def encode_record(payload: bytes, n_points: int) -> bytes:
    """One spool record (header + payload) for ``payload`` holding ``n_points`` points."""
    head = struct.pack("<4sBBHIII", MAGIC, VERSION, 0, 0, n_points, len(payload), zlib.crc32(payload))
    return head + _HEAD_CRC.pack(zlib.crc32(head)) + payload


def _parse_header(buf: bytes | memoryview, pos: int) -> tuple[int, int, int] | None:
    """(n_points, length, payload_crc) if a valid header starts at ``pos``, else None."""
    if pos + HEADER_SIZE > len(buf):
        return None
    magic, version, _flags, _res, n, length, pcrc, hcrc = _HEADER.unpack_from(buf, pos)
    if magic != MAGIC or version != VERSION:
        return None
    if zlib.crc32(bytes(buf[pos:pos + HEADER_SIZE - 4])) != hcrc:
        return None
    return n, length, pcrc


class Spool:
    """Durable FIFO of (payload, n_points) records with a byte cap.

    Parameters
    ----------
    directory : where segments live (created if missing).
    max_bytes : cap on unconsumed record bytes [bytes]; oldest records are dropped beyond it.
    segment_bytes : roll over to a new segment file after this size [bytes].
    fsync : ``fdatasync`` after every append and cursor move (turn off only in benchmarks).
    on_drop : called with ``[(payload, n_points), ...]`` of the records an append drops by the cap
        (payload ``b""`` if it could not be read), before the drop is made durable.
    """

    def __init__(self, directory: str | os.PathLike, *, max_bytes: int = 2**30,
                 segment_bytes: int | None = None, fsync: bool = True,
                 on_drop: Callable[[list[tuple[bytes, int]]], None] | None = None) -> None:
        self.dir = Path(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "quarantine").mkdir(exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"spool directory {self.dir}: {exc}") from None
        if max_bytes <= HEADER_SIZE:
            raise ValueError(f"spool max_bytes must be > {HEADER_SIZE}, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.segment_bytes = int(segment_bytes or min(64 << 20, max(1 << 20, self.max_bytes // 8)))
        self.fsync = fsync
        self.on_drop = on_drop
        self._index: deque[_Rec] = deque()
        self.pending_bytes = 0
        self.pending_points = 0
        self.recovered_points = 0     # intact points found at open
        self.dropped_points = 0       # dropped by the byte cap (oldest first)
        self.corrupt_records = 0      # corrupt / truncated regions quarantined
        self.corrupt_points = 0       # points inside records whose payload CRC failed (count known)
        self.quarantined_bytes = 0
        self._fd: int | None = None
        self._seq = 0
        self._seg_size = 0
        self._lock_file = open(self.dir / "lock", "a+")   # noqa: SIM115 - held for the spool's lifetime
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise SpoolError(f"spool directory {self.dir} is in use by another writer "
                             "(give each collector process its own spool_dir)") from None
        self._open()

    # ------------------------------------------------------------------ open / scan
    def _segments(self) -> list[int]:
        out = []
        for p in self.dir.glob("*.seg"):
            try:
                out.append(int(p.stem))
            except ValueError:
                continue
        return sorted(out)

    def _path(self, seq: int) -> Path:
        return self.dir / f"{seq:012d}.seg"

    def _read_cursor(self) -> tuple[int, int]:
        try:
            text = (self.dir / "cursor").read_text().split()
            return int(text[0]), int(text[1])
        except (OSError, ValueError, IndexError):
            return 0, 0

    def _open(self) -> None:
        cur_seq, cur_off = self._read_cursor()
        segs = self._segments()
        for seq in segs:
            if seq < cur_seq:
                self._path(seq).unlink(missing_ok=True)     # fully consumed before a crash
                continue
            self._scan(seq, cur_off if seq == cur_seq else 0)
        self._seq = (segs[-1] if segs else 0) + 1
        self.recovered_points = self.pending_points

    def _scan(self, seq: int, start: int) -> None:
        data = self._path(seq).read_bytes()
        pos = start
        while pos < len(data):
            hdr = _parse_header(data, pos)
            if hdr is None:
                nxt = self._resync(data, pos + 1)
                self._quarantine(seq, pos, data[pos:nxt], "bad header" if nxt < len(data) else
                                 "bad header or truncated tail")
                pos = nxt
                continue
            n, length, pcrc = hdr
            end = pos + HEADER_SIZE + length
            if end > len(data):
                self._quarantine(seq, pos, data[pos:], "truncated record (torn write at the tail)")
                self.corrupt_points += n
                break
            if zlib.crc32(data[pos + HEADER_SIZE:end]) != pcrc:
                self._quarantine(seq, pos, data[pos:end], "payload CRC mismatch")
                self.corrupt_points += n
                pos = end
                continue
            self._index.append(_Rec(seq, pos, end - pos, n))
            self.pending_bytes += end - pos
            self.pending_points += n
            pos = end

    @staticmethod
    def _resync(data: bytes, pos: int) -> int:
        while True:
            i = data.find(MAGIC, pos)
            if i < 0:
                return len(data)
            if _parse_header(data, i) is not None:
                return i
            pos = i + 1

    def _quarantine(self, seq: int, offset: int, blob: bytes, why: str) -> None:
        base = self.dir / "quarantine" / f"{seq:012d}-{offset:012d}"
        base.with_suffix(".bad").write_bytes(blob)
        base.with_suffix(".why").write_text(f"{why}; {len(blob)} bytes at offset {offset} of segment {seq}; "
                                            f"quarantined {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
        self.corrupt_records += 1
        self.quarantined_bytes += len(blob)

    # ------------------------------------------------------------------ append
    def __len__(self) -> int:
        return len(self._index)

    def append(self, payload: bytes, n_points: int) -> int:
        """Append one record durably; return the number of points dropped (oldest) by the byte cap."""
        rec = encode_record(payload, n_points)
        dropped = 0
        gone: list[tuple[bytes, int]] = []
        while self._index and self.pending_bytes + len(rec) > self.max_bytes:
            dropped += self._index[0].n_points
            if self.on_drop is not None:
                gone.append((self._payload(self._index[0]), self._index[0].n_points))
            self._consume()
        if len(rec) > self.max_bytes:           # a record larger than the whole cap cannot be kept
            self.dropped_points += dropped + n_points
            if self.on_drop is not None:
                self.on_drop([*gone, (payload, n_points)])
            if dropped:
                self._write_cursor()
            return dropped + n_points
        if self._fd is None or self._seg_size >= self.segment_bytes:
            self._roll()
        os.write(self._fd, rec)
        if self.fsync:
            os.fdatasync(self._fd)
        self._index.append(_Rec(self._seq, self._seg_size, len(rec), n_points))
        self._seg_size += len(rec)
        self.pending_bytes += len(rec)
        self.pending_points += n_points
        self.dropped_points += dropped
        if dropped:
            if gone:
                self.on_drop(gone)
            self._write_cursor()
        return dropped

    def _payload(self, rec: _Rec) -> bytes:
        """The payload of an indexed record, ``b""`` if unreadable (only to report a drop)."""
        try:
            with open(self._path(rec.seq), "rb") as f:
                f.seek(rec.offset + HEADER_SIZE)
                return f.read(rec.size - HEADER_SIZE)
        except OSError:
            return b""

    def _roll(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._seq += 1
        self._fd = os.open(self._path(self._seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._seg_size = os.fstat(self._fd).st_size
        if self.fsync:
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)       # the new file's directory entry is durable too
            finally:
                os.close(dfd)

    # ------------------------------------------------------------------ read / consume
    def peek(self) -> tuple[bytes, int] | None:
        """The oldest record as (payload, n_points), or None when empty.

        A record whose bytes changed on disk since it was indexed is quarantined, counted in
        :attr:`corrupt_points`, and skipped.
        """
        while self._index:
            rec = self._index[0]
            try:
                with open(self._path(rec.seq), "rb") as f:
                    f.seek(rec.offset)
                    blob = f.read(rec.size)
            except OSError:
                blob = b""
            hdr = _parse_header(blob, 0)
            if hdr is not None and len(blob) == rec.size and \
                    zlib.crc32(blob[HEADER_SIZE:]) == hdr[2] and hdr[0] == rec.n_points:
                return blob[HEADER_SIZE:], rec.n_points
            self._quarantine(rec.seq, rec.offset, blob, "record changed on disk after it was written")
            self.corrupt_points += rec.n_points
            self._consume()
            self._write_cursor()
        return None

    def pop(self) -> None:
        """Mark the oldest record consumed (durably, via the cursor file)."""
        if not self._index:
            raise IndexError("pop from an empty spool")
        self._consume()
        self._write_cursor()

    def _consume(self) -> None:
        rec = self._index.popleft()
        self.pending_bytes -= rec.size
        self.pending_points -= rec.n_points
        nxt_seq = self._index[0].seq if self._index else self._seq
        if nxt_seq != rec.seq and rec.seq != self._seq:
            self._path(rec.seq).unlink(missing_ok=True)

    def _write_cursor(self) -> None:
        if self._index:
            seq, off = self._index[0].seq, self._index[0].offset
        else:
            seq, off = self._seq, self._seg_size
        tmp = self.dir / "cursor.tmp"
        with open(tmp, "w") as f:
            f.write(f"{seq} {off}\n")
            f.flush()
            if self.fsync:
                os.fdatasync(f.fileno())
        os.replace(tmp, self.dir / "cursor")

    def close(self) -> None:
        """Close files and release the directory lock (the data stays for the next open)."""
        if not self._lock_file.closed:
            self._lock_file.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            # drop an empty segment of this run (nothing was appended after a roll)
            if self._seg_size == 0:
                self._path(self._seq).unlink(missing_ok=True)


# ---------------------------------------------------------------------- what the byte cap dropped
def line_tags(line: bytes) -> dict[str, str]:
    """Tag set of one line-protocol line (``measurement,k=v,... fields time``); {} if it has none."""
    if b"\\" not in line:                                       # the usual case: nothing escaped
        head = line.split(b" ", 1)[0].split(b",")
        return {k.decode(errors="replace"): v.decode(errors="replace")
                for k, _, v in (t.partition(b"=") for t in head[1:])}
    # escaped: scan once, a backslash makes the next byte literal; ',' ends a tag, ' ' the tag set
    tags: list[list[bytearray]] = []                            # [[key, value], ...]; [0] is the measurement
    cur = [bytearray()]
    i = 0
    while i < len(line):
        c = line[i]
        if c == 0x5C and i + 1 < len(line):
            cur[-1].append(line[i + 1])
            i += 2
            continue
        if c == 0x20:
            break
        if c == 0x2C:
            tags.append(cur)
            cur = [bytearray()]
        elif c == 0x3D and len(cur) == 1 and tags:
            cur.append(bytearray())
        else:
            cur[-1].append(c)
        i += 1
    tags.append(cur)
    return {bytes(t[0]).decode(errors="replace"): bytes(t[1]).decode(errors="replace")
            for t in tags[1:] if len(t) == 2}


class DropLedger:
    """Readings the spool's byte cap dropped, per (site, device), kept in ``<spool>/dropped.json``
    until they are recorded in InfluxDB (``ingest_health``), so the count survives a restart.

    File (replaced atomically, fsync'ed)::

        {"unrecorded": {"<site>/<device>": {"site", "device", "points", "first_ns", "last_ns"}},
         "dropped_total": N, "recorded_total": N, "last_drop_ns": t, "last_recorded_ns": t}

    ``dropped_total`` counts every point dropped by this spool directory, across restarts.  A
    crash between a drop and its record can only count a point twice, never lose the count: the
    ledger is written before the spool's cursor moves past the dropped records.
    """

    FILE = "dropped.json"

    def __init__(self, directory: str | os.PathLike, *, fsync: bool = True) -> None:
        self.path = Path(directory) / self.FILE
        self.fsync = fsync
        self.load_error = ""
        self.state = {"unrecorded": {}, "dropped_total": 0, "recorded_total": 0, "last_drop_ns": None,
                      "last_recorded_ns": None}
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict) or not isinstance(raw.get("unrecorded"), dict):
                raise ValueError("not a drop ledger")
            self.state.update(raw)
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:                 # keep the bad file for a person to read
            bad = self.path.with_name(f"{self.FILE}.bad-{time.time_ns()}")
            try:
                os.replace(self.path, bad)
            except OSError:
                pass
            self.load_error = f"{self.path}: unreadable ({exc}); moved to {bad.name}"
        self._count()

    def _count(self) -> None:
        # kept as one int, so another thread (stats) reads it without iterating a changing dict
        self.unrecorded_points = sum(int(r["points"]) for r in self.state["unrecorded"].values())

    def add(self, records: list[tuple[bytes, int]], now_ns: int) -> dict[tuple[str, str], int]:
        """Count dropped records by (site, device); persist; return this drop's counts."""
        counts: dict[tuple[str, str], int] = {}
        for payload, n in records:
            lines = [ln for ln in payload.split(b"\n") if ln] if payload else []
            if len(lines) != n:                               # unreadable: the count is still known
                key = ("-", "-")
                counts[key] = counts.get(key, 0) + n
                continue
            seen: dict[bytes, tuple[str, str]] = {}
            for ln in lines:
                head = ln.split(b" ", 1)[0] if b"\\" not in ln else ln
                key = seen.get(head)
                if key is None:
                    tags = line_tags(ln)
                    key = seen[head] = (tags.get("site") or "-", tags.get("device") or "-")
                counts[key] = counts.get(key, 0) + 1
        un = self.state["unrecorded"]
        for (site, device), n in counts.items():
            r = un.setdefault(f"{site}/{device}", {"site": site, "device": device, "points": 0,
                                                   "first_ns": now_ns, "last_ns": now_ns})
            r["points"] += n
            r["last_ns"] = now_ns
        self.state["dropped_total"] += sum(counts.values())
        self.state["last_drop_ns"] = now_ns
        self._count()
        self.save()
        return counts

    def recorded(self, rows: list[dict], now_ns: int) -> None:
        """``rows`` (a copy of :attr:`state` ``["unrecorded"]`` values) are now stored in InfluxDB."""
        un = self.state["unrecorded"]
        for r in rows:
            cur = un.get(f"{r['site']}/{r['device']}")
            if cur is None:
                continue
            cur["points"] -= r["points"]
            if cur["points"] <= 0:
                del un[f"{r['site']}/{r['device']}"]
            else:
                cur["first_ns"] = r["last_ns"]
        self.state["recorded_total"] += sum(r["points"] for r in rows)
        self.state["last_recorded_ns"] = now_ns
        self._count()
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.FILE + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.state, f, sort_keys=True)
            f.flush()
            if self.fsync:
                os.fdatasync(f.fileno())
        os.replace(tmp, self.path)
