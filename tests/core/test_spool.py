"""core.spool: durable FIFO, restart, byte cap (drop oldest, counted), corruption quarantined."""

from __future__ import annotations

import pytest

from core.spool import HEADER_SIZE, Spool, encode_record


def _fill(sp: Spool, n: int, size: int = 50) -> list[bytes]:
    payloads = [f"rec{i:04d}".encode().ljust(size, b"x") for i in range(n)]
    for i, p in enumerate(payloads):
        assert sp.append(p, i + 1) == 0
    return payloads


def _drain(sp: Spool) -> list[tuple[bytes, int]]:
    out = []
    while (rec := sp.peek()) is not None:
        out.append(rec)
        sp.pop()
    return out


def test_fifo_and_counts(tmp_path):
    sp = Spool(tmp_path)
    payloads = _fill(sp, 5)
    assert len(sp) == 5 and sp.pending_points == 15
    assert sp.pending_bytes == 5 * (HEADER_SIZE + 50)
    got = _drain(sp)
    assert [p for p, _ in got] == payloads and [n for _, n in got] == [1, 2, 3, 4, 5]
    assert sp.pending_points == 0 and sp.pending_bytes == 0 and sp.peek() is None
    with pytest.raises(IndexError):
        sp.pop()


def test_survives_restart_and_cursor(tmp_path):
    sp = Spool(tmp_path)
    payloads = _fill(sp, 6)
    sp.peek()
    sp.pop()
    sp.pop()                                  # two consumed before the "crash"
    del sp                                    # no close(): a crash (the kernel drops the lock)
    sp2 = Spool(tmp_path)
    assert sp2.recovered_points == 3 + 4 + 5 + 6
    assert [p for p, _ in _drain(sp2)] == payloads[2:]
    sp2.append(b"new", 1)
    sp2.close()
    sp3 = Spool(tmp_path)
    assert [p for p, _ in _drain(sp3)] == [b"new"]


def test_segments_roll_and_are_deleted_when_consumed(tmp_path):
    sp = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=200)
    payloads = _fill(sp, 12)
    assert len(list(tmp_path.glob("*.seg"))) >= 4
    assert [p for p, _ in _drain(sp)] == payloads
    assert len(list(tmp_path.glob("*.seg"))) == 1     # only the segment still open for appends
    sp.close()
    assert Spool(tmp_path).pending_points == 0


def test_byte_cap_drops_oldest_and_counts(tmp_path):
    rec = HEADER_SIZE + 50
    sp = Spool(tmp_path, max_bytes=3 * rec, segment_bytes=rec)
    for i in range(3):
        assert sp.append(f"r{i}".encode().ljust(50, b"."), 10) == 0
    assert sp.append(b"r3".ljust(50, b"."), 10) == 10          # r0 dropped
    assert sp.append(b"r4".ljust(50, b"."), 10) == 10          # r1 dropped
    assert sp.dropped_points == 20 and sp.pending_points == 30
    assert [p[:2] for p, _ in _drain(sp)] == [b"r2", b"r3", b"r4"]
    # a record bigger than the whole cap is itself dropped, counted
    assert sp.append(b"y" * (4 * rec), 7) == 7
    assert sp.dropped_points == 27 and sp.pending_points == 0


def test_truncated_tail_is_quarantined(tmp_path):
    sp = Spool(tmp_path)
    payloads = _fill(sp, 3)
    sp.close()
    seg = next(tmp_path.glob("*.seg"))
    data = seg.read_bytes()
    seg.write_bytes(data[:-10])               # torn last write
    sp2 = Spool(tmp_path)
    assert sp2.corrupt_records == 1 and sp2.corrupt_points == 3
    assert [p for p, _ in _drain(sp2)] == payloads[:2]
    q = list((tmp_path / "quarantine").glob("*.why"))
    assert q and "truncated" in q[0].read_text()


def test_flipped_payload_byte_quarantines_only_that_record(tmp_path):
    sp = Spool(tmp_path)
    payloads = _fill(sp, 3)
    sp.close()
    seg = next(tmp_path.glob("*.seg"))
    data = bytearray(seg.read_bytes())
    data[(HEADER_SIZE + 50) + HEADER_SIZE + 5] ^= 0xFF     # inside payload of record 2
    seg.write_bytes(bytes(data))
    sp2 = Spool(tmp_path)
    assert sp2.corrupt_records == 1 and sp2.corrupt_points == 2
    assert [p for p, _ in _drain(sp2)] == [payloads[0], payloads[2]]


def test_flipped_header_byte_resyncs_to_next_record(tmp_path):
    sp = Spool(tmp_path)
    payloads = _fill(sp, 4)
    sp.close()
    seg = next(tmp_path.glob("*.seg"))
    data = bytearray(seg.read_bytes())
    data[(HEADER_SIZE + 50) + 9] ^= 0x01     # n_points field of record 2: header CRC fails
    seg.write_bytes(bytes(data))
    sp2 = Spool(tmp_path)
    assert sp2.corrupt_records == 1
    assert [p for p, _ in _drain(sp2)] == [payloads[0], payloads[2], payloads[3]]


def test_garbage_and_deleted_files(tmp_path):
    (tmp_path / "000000000001.seg").write_bytes(b"\x00garbage" * 10 + encode_record(b"ok", 2) + b"EHSP\x01")
    (tmp_path / "cursor").write_text("not a cursor")
    sp = Spool(tmp_path)
    assert _drain(sp) == [(b"ok", 2)]
    assert sp.corrupt_records == 2


def test_record_changed_after_indexing(tmp_path):
    sp = Spool(tmp_path)
    payloads = _fill(sp, 2)
    seg = next(tmp_path.glob("*.seg"))
    data = bytearray(seg.read_bytes())
    data[HEADER_SIZE + 1] ^= 0xFF
    seg.write_bytes(bytes(data))
    got = _drain(sp)
    assert got == [(payloads[1], 2)] and sp.corrupt_points == 1


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="max_bytes"):
        Spool(tmp_path, max_bytes=10)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="spool directory"):
        Spool(tmp_path / "file" / "sub")


def test_one_owner_per_directory(tmp_path):
    sp = Spool(tmp_path)
    with pytest.raises(OSError, match="in use by another writer"):
        Spool(tmp_path)
    sp.close()
    Spool(tmp_path).close()
