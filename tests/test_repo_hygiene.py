"""The repository speaks of itself alone.

No file may cite a document outside the repository, hold a machine path, or carry talk about who
wrote it and when (meeting numbers, ticket numbers, people's roles).  Standards are cited as
"docs/standards.md §N", and every such section must exist on that page.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()

# (pattern, why it is forbidden).  Word boundaries keep ordinary words ("swing", "showing",
# "following", the ``helpers=`` keyword of core.profiles) out of it.
FORBIDDEN = [
    (r"shared/reference", "a document outside the repository"),
    (r"/work/", "a machine path"),
    (r"(?<![\w/])standards\.md", "cite the project's own page as docs/standards.md"),
    (r"\bissue #?\d", "a ticket number"),
    (r"\bthe lead\b", "a person's role"),
    (r"\bwings?\b", "a team's name"),
    (r"\beng-(?!pass\b)[a-z]", "a team's name"),
    (r"\bsession \d", "a meeting number"),
    (r"\bhelper\b", "a person's role"),
    (r"\bother engineers\b", "people, not the code"),
    (r"\bthis issue\b", "a ticket, not the code"),
]
PATTERN = re.compile("|".join(f"(?:{p})" for p, _ in FORBIDDEN), re.IGNORECASE)

CITE = re.compile(r"docs/standards\.md (§§?)(\d+(?:\.\d+)?)(?:\s*[-–]\s*(\d+(?:\.\d+)?))?")
HEADING = re.compile(r"^#{2,3} (\d+(?:\.\d+)?)(?:\s*[-–]\s*(\d+(?:\.\d+)?))?[ .]", re.MULTILINE)


def repo_files() -> list[Path]:
    """Tracked files plus new ones not ignored (so a file is checked before its first commit)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, check=True, capture_output=True).stdout
    paths = [ROOT / p for p in out.decode().split("\0") if p]
    return [p for p in paths if p.is_file() and p.resolve() != THIS]


def text_of(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None                       # binary files (images, fonts) say nothing


def offences(text: str) -> list[str]:
    return [m.group(0) for m in PATTERN.finditer(text)]


def standards_sections() -> set[str]:
    """Section numbers of docs/standards.md; a heading "7.1–7.3" stands for 7.1, 7.2 and 7.3."""
    found: set[str] = set()
    for first, last in HEADING.findall((ROOT / "docs" / "standards.md").read_text(encoding="utf-8")):
        found.add(first)
        if last:
            major, lo = first.split(".")
            found.update(f"{major}.{k}" for k in range(int(lo), int(last.split(".")[1]) + 1))
    return found


def test_the_patterns_catch_team_talk_and_spare_ordinary_words():
    bad = ["see /work/shared/reference/standards.md §6", "Targets (issue 3)", "the lead's CLI",
           "other wings use", "eng-reports' routes", "written by eng-signals", "re-run in session 2", "a helper measured it",
           "(standards.md §7.4)", "before this issue's work"]
    for line in bad:
        assert offences(line), line
    good = ["a daily swing of 4 °C", "showing consumption", "the following month",
            "decode(words, helpers=True)", "from wf_helpers import T0", "docs/standards.md §7.4",
            "a charging session of 60 kWh",
            'password="eng-pass-1"', "the energy of this session's charging"]
    for line in good:
        assert not offences(line), line


def test_no_file_cites_outside_the_repository_or_carries_team_talk():
    bad = []
    for path in repo_files():
        text = text_of(path)
        if text is None:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            for hit in offences(line):
                bad.append(f"{path.relative_to(ROOT)}:{n}: {hit!r}")
    assert not bad, "\n".join(bad)


def test_every_cited_standards_section_exists():
    sections = standards_sections()
    assert {"1", "5.3", "7.2", "10.2"} <= sections        # the page is parsed, ranges expanded
    missing = []
    for path in repo_files():
        text = text_of(path)
        if text is None:
            continue
        for m in CITE.finditer(text):
            for number in filter(None, (m.group(2), m.group(3))):
                if number not in sections:
                    missing.append(f"{path.relative_to(ROOT)}: {m.group(0)}")
    assert not missing, "\n".join(missing)
