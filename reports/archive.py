"""On-disk archive of generated monthly reports.

Layout under the root (``EH_REPORT_DIR``, default ``var/reports``)::

    <customer_id>/<YYYY-MM>/report.json          the figures (MonthlyReport.to_dict())
    <customer_id>/<YYYY-MM>/report_<lang>.html   one page per language
    <customer_id>/<YYYY-MM>/report_<lang>.pdf
    <customer_id>/<YYYY-MM>/sent.json            e-mail delivery record, when sent

Identifiers are checked against strict patterns before any path is built, so a request
parameter can never name a file outside the archive.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.ids import ID_RE
from reports.i18n import LANGS

MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
CUSTOMER_RE = ID_RE
FORMATS: tuple[str, ...] = ("html", "pdf", "json")


def check_month(month: str) -> str:
    """Return ``month`` if it is ``YYYY-MM``; ``ValueError`` otherwise."""
    if not isinstance(month, str) or not MONTH_RE.match(month):
        raise ValueError(f"month must be YYYY-MM (e.g. 2026-10), got {month!r}")
    return month


def check_customer(customer_id: str) -> str:
    if not isinstance(customer_id, str) or not CUSTOMER_RE.match(customer_id) or ".." in customer_id:
        raise ValueError(f"customer id must match [a-z0-9][a-z0-9_.-]{{0,63}}, got {customer_id!r}")
    return customer_id


@dataclass(frozen=True)
class ReportEntry:
    """One archived report: who, which month, which files exist."""

    customer_id: str
    month: str
    langs: tuple[str, ...]
    generated_ns: int
    sent: bool

    def to_dict(self) -> dict:
        return {"customer_id": self.customer_id, "month": self.month, "langs": list(self.langs),
                "generated_ns": self.generated_ns, "sent": self.sent}


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ReportArchive:
    """Files of generated reports, one folder per customer and month."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ReportArchive:
        e = os.environ if env is None else env
        return cls(e.get("EH_REPORT_DIR", "var/reports"))

    def folder(self, customer_id: str, month: str) -> Path:
        return self.root / check_customer(customer_id) / check_month(month)

    def path(self, customer_id: str, month: str, fmt: str, lang: str = "zh") -> Path:
        """Path of one file; ``ValueError`` for an unknown format or language."""
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
        if fmt == "json":
            return self.folder(customer_id, month) / "report.json"
        if lang not in LANGS:
            raise ValueError(f"language must be one of {LANGS}, got {lang!r}")
        return self.folder(customer_id, month) / f"report_{lang}.{fmt}"

    def save(self, report_dict: dict, html: dict[str, str], pdf: dict[str, bytes]) -> ReportEntry:
        """Write the figures and every language's HTML and PDF (atomically, file by file)."""
        cid, month = report_dict["customer_id"], report_dict["month"]
        for lang, page in html.items():
            _atomic_write(self.path(cid, month, "html", lang), page.encode("utf-8"))
        for lang, data in pdf.items():
            _atomic_write(self.path(cid, month, "pdf", lang), data)
        # the JSON goes last: its presence marks a complete report
        _atomic_write(self.path(cid, month, "json"),
                      json.dumps(report_dict, ensure_ascii=False, indent=1, default=float).encode("utf-8"))
        entry = self.entry(cid, month)
        assert entry is not None
        return entry

    def mark_sent(self, customer_id: str, month: str, to: list[str], sent_ns: int) -> None:
        _atomic_write(self.folder(customer_id, month) / "sent.json",
                      json.dumps({"to": to, "sent_ns": sent_ns}).encode("utf-8"))

    def entry(self, customer_id: str, month: str) -> ReportEntry | None:
        """The archived report of ``customer_id`` for ``month``, or None if there is none."""
        folder = self.folder(customer_id, month)
        figures = folder / "report.json"
        if not figures.is_file():
            return None
        langs = tuple(lang for lang in LANGS if (folder / f"report_{lang}.html").is_file())
        generated = json.loads(figures.read_text(encoding="utf-8")).get("generated_ns", 0)
        return ReportEntry(customer_id, month, langs, int(generated), (folder / "sent.json").is_file())

    def has(self, customer_id: str, month: str) -> bool:
        return (self.folder(customer_id, month) / "report.json").is_file()

    def list(self, customer_ids: list[str] | None = None) -> list[ReportEntry]:
        """Archived reports, newest month first; only ``customer_ids`` when given."""
        if not self.root.is_dir():
            return []
        out: list[ReportEntry] = []
        for cdir in sorted(self.root.iterdir()):
            if not cdir.is_dir() or not CUSTOMER_RE.match(cdir.name):
                continue
            if customer_ids is not None and cdir.name not in customer_ids:
                continue
            for mdir in cdir.iterdir():
                if mdir.is_dir() and MONTH_RE.match(mdir.name):
                    e = self.entry(cdir.name, mdir.name)
                    if e is not None:
                        out.append(e)
        out.sort(key=lambda e: (e.month, e.customer_id), reverse=True)
        return out

    def figures(self, customer_id: str, month: str) -> dict:
        """The JSON figures of an archived report; ``FileNotFoundError`` if absent."""
        return json.loads(self.path(customer_id, month, "json").read_text(encoding="utf-8"))
