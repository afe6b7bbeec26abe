"""Planning the block reads of a set of register rows.

Conventions in :mod:`core.profiles`.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.profiles.rows import MAX_BLOCK, TABLES, Block, ProfileError, Register

# ---------------------------------------------------------------------------------------- planning

def plan_blocks(registers: Iterable[Register], *, max_gap: int = 4, max_count: int = MAX_BLOCK) -> list[Block]:
    """Group rows into contiguous reads of ≤ ``max_count`` registers per table.

    Rows more than ``max_gap`` registers apart start a new block.  A row and the
    scale-factor row it refers to always share one block (they form one unit).
    Raises :class:`ProfileError` on overlapping rows or a unit longer than ``max_count``.
    """
    regs = sorted(registers, key=lambda r: (r.table, r.address))
    blocks: list[Block] = []
    for table in TABLES:
        rows = [r for r in regs if r.table == table]
        if not rows:
            continue
        for a, b in zip(rows, rows[1:], strict=False):
            if b.address < a.end:
                raise ProfileError(f"registers {a.key!r} ({table} {a.address}..{a.end - 1}) and {b.key!r} "
                                   f"({table} {b.address}) overlap")
        by_key = {r.key: r for r in rows}
        # units: spans joined by scale-factor references, then overlapping spans merged
        spans = []
        for r in rows:
            lo, hi = r.address, r.end
            if r.scale_factor is not None:
                sf = by_key.get(r.scale_factor)
                if sf is None:
                    raise ProfileError(f"register {r.key!r}: scale factor {r.scale_factor!r} is not a "
                                       f"{table} row")
                lo, hi = min(lo, sf.address), max(hi, sf.end)
            spans.append((lo, hi))
        spans.sort()
        units: list[list[int]] = []
        for lo, hi in spans:
            if units and lo < units[-1][1]:
                units[-1][1] = max(units[-1][1], hi)
            else:
                units.append([lo, hi])
        groups: list[list[int]] = []
        for lo, hi in units:
            if hi - lo > max_count:
                raise ProfileError(f"{table} {lo}..{hi - 1}: a value and its scale factor span {hi - lo} "
                                   f"registers, more than one read of {max_count}")
            if groups and lo - groups[-1][1] <= max_gap and hi - groups[-1][0] <= max_count:
                groups[-1][1] = hi
            else:
                groups.append([lo, hi])
        for lo, hi in groups:
            members = [r for r in rows if lo <= r.address < hi]
            blocks.append(Block(table, lo, hi - lo, members))
    return blocks
