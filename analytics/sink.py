"""Where analytics sends alarm events: a one-method protocol, so analytics never imports the workflow.

The workflow store implements it (``workflow.Store.record``); a test may pass a list-backed
fake only where the store itself is not under test.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from core.model import AlarmEvent


@runtime_checkable
class AlarmSink(Protocol):
    """Receives alarm raises, updates (same key and raise time, new severity, evidence or
    suppression) and clears, in time order; returns counts by outcome."""

    def record(self, events: Iterable[AlarmEvent]) -> dict[str, int]: ...
