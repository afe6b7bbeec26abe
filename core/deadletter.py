"""Dead-letter files: rejected input kept for inspection, durable and bounded on disk.

A :class:`DeadLetterFile` is an append-only JSONL file; every :meth:`~DeadLetterFile.append` is
written, flushed and fsync'ed before it returns (the MQTT collector acknowledges a rejected
message only after this), and an ``OSError`` reaches the caller instead of being swallowed.

Size is bounded by rotation: when an append would take the current file past ``max_bytes`` it
becomes ``<name>.1`` (``.1`` becomes ``.2`` and so on) and a new file is started; at most
``backups`` old files are kept, the oldest is deleted.  So a flood of garbage from one broken
gateway costs at most ``max_bytes × (backups + 1)`` of disk, and the newest rejects are always
kept.  The naming is that of :class:`logging.handlers.RotatingFileHandler`; that handler is not
used because it reports write errors to stderr and carries on, and cannot fsync — a dead letter
that may silently not exist would break the collector's "acknowledged only when durable" rule.
Every reject is also counted per reason in the collectors' metrics, rotated away or not.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

DEFAULT_MAX_BYTES = 16 * 2**20
DEFAULT_BACKUPS = 4


class DeadLetterFile:
    """Append JSON records to ``path``, fsync'ed, rotated at ``max_bytes`` keeping ``backups`` files."""

    def __init__(self, path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 backups: int = DEFAULT_BACKUPS) -> None:
        if max_bytes < 4096:
            raise ValueError(f"dead-letter max_bytes must be >= 4096, got {max_bytes}")
        if backups < 0:
            raise ValueError(f"dead-letter backups must be >= 0, got {backups}")
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.backups = int(backups)
        self.rotations = 0
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, records: list[dict]) -> None:
        """Write ``records`` (one JSON line each) durably; rotate first if they would not fit."""
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
        with self._lock:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size and size + len(data) > self.max_bytes:
                self._rotate()
            with open(self.path, "ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())

    def files(self) -> list[Path]:
        """The current file and its backups that exist, newest first."""
        out = [self.path] + [self._backup(i) for i in range(1, self.backups + 1)]
        return [p for p in out if p.exists()]

    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files())

    def _backup(self, i: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{i}")

    def _rotate(self) -> None:
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            self._backup(self.backups).unlink(missing_ok=True)
            for i in range(self.backups - 1, 0, -1):
                if self._backup(i).exists():
                    os.replace(self._backup(i), self._backup(i + 1))
            os.replace(self.path, self._backup(1))
        self.rotations += 1
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:                    # the renames themselves survive a crash
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
