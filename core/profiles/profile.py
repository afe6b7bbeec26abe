"""A loaded device profile.

Conventions in :mod:`core.profiles`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.profiles.planning import plan_blocks
from core.profiles.rows import Block, Example, ProfileError, Register, SunSpecModel, SunSpecModelDef
from core.profiles.sunspec import resolve_sunspec


@dataclass(frozen=True)
class Profile:
    id: str
    path: Path
    kind: str
    vendor: str
    model: str
    manual: str
    protocol: str                          # "modbus" | "sunspec"
    word_order: str
    max_gap: int
    registers: tuple[Register, ...]
    examples: tuple[Example, ...] = ()
    sunspec_models: tuple[SunSpecModelDef, ...] = ()
    blocks: tuple[Block, ...] = field(default=(), compare=False, repr=False)

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(r.key for r in self.registers if r.is_channel)

    def resolve(self, chain: Sequence[SunSpecModel] | None = None) -> tuple[Register, ...]:
        """Absolute registers: the rows themselves, or for SunSpec the rows placed on ``chain``."""
        if self.protocol != "sunspec":
            return self.registers
        if chain is None:
            raise ProfileError(f"{self.path}: SunSpec profile needs the discovered model chain")
        return resolve_sunspec(self, chain)

    def plan(self, chain: Sequence[SunSpecModel] | None = None) -> tuple[Block, ...]:
        if self.protocol != "sunspec":
            return self.blocks
        return tuple(plan_blocks(self.resolve(chain), max_gap=self.max_gap))
