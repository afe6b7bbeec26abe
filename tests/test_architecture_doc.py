"""docs/architecture.md, README.md and docs/*.md say what the code is.

The fleet file example in docs/architecture.md is valid TOML that ``core.config`` accepts, naming profiles and
a tariff that exist; every repository path README.md and docs/*.md name (in backticks) exists.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from analytics.tariffs import check_site_tariff, load_tariff
from core.config import parse_fleet
from core.profiles import load_profiles

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "docs" / "architecture.md"
README = ROOT / "README.md"

# a backticked token that reads as a path in the repository: starts with one of its top-level entries
# (not the run-time ones: var/ is made by the demo, tests and benchmarks)
RUNTIME = {"var", "build", "dist", "__pycache__"}
TOP = sorted(p.name for p in ROOT.iterdir()
             if (not p.name.startswith(".") or p.name == ".ci") and p.name not in RUNTIME
             and not p.name.endswith(".egg-info"))
ALTERNATIVES = "|".join(re.escape(t) + "/" for t in TOP)
PATH = re.compile(rf"`((?:{ALTERNATIVES})[^`\s]*|sites\.example\.toml|pyproject\.toml)`")


def fleet_example() -> str:
    text = ARCH.read_text(encoding="utf-8")
    section = text.split("\n## Fleet file", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```toml\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1, "the Fleet file section holds one toml block"
    return blocks[0]


def test_fleet_example_is_valid_toml_that_core_config_accepts():
    raw = tomllib.loads(fleet_example())
    fleet = parse_fleet(raw, "docs/architecture.md", known_profiles=set(load_profiles()))
    assert fleet.devices and fleet.gateways and fleet.sites
    assert {d.transport for d in fleet.devices.values()} == {"modbus", "mqtt"}
    for site in fleet.sites.values():
        check_site_tariff(site.id, site.province, site.tariff_example_ok, load_tariff(site.tariff))


def named_paths(doc: Path) -> set[str]:
    return {m.group(1).rstrip(".,:") for m in PATH.finditer(doc.read_text(encoding="utf-8"))}


GENERATED = {"api/static/vendor/"}                     # git-ignored, filled by scripts/bootstrap.sh


def exists(token: str) -> bool:
    if token in GENERATED:
        return True
    token = token.split("::", 1)[0]                  # tests/x.py::test_name: the file
    if "<" in token:                                   # a placeholder: its folder must exist
        token = token.split("<", 1)[0]
    if "*" in token:
        return any(ROOT.glob(token))
    return (ROOT / token).exists()


def test_every_path_the_documents_name_exists():
    assert len(named_paths(ARCH)) > 30 and len(named_paths(README)) > 10     # the pattern does see the paths
    missing = [f"{doc.relative_to(ROOT)}: {t}" for doc in [README, *sorted((ROOT / "docs").glob("*.md"))]
               for t in sorted(named_paths(doc)) if not exists(t)]
    assert not missing, "\n".join(missing)


def test_every_energyhost_command_the_readme_names_exists():
    from energyhost.cli import build_parser

    text = README.read_text(encoding="utf-8")
    named = set(re.findall(r"^energyhost ([a-z][a-z-]+)", text, re.MULTILINE))
    named |= set(re.findall(r"`energyhost ([a-z][a-z-]+)", text))
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    assert len(named) >= 10
    assert named <= set(subparsers.choices), sorted(named - set(subparsers.choices))
    options = {c: {o for act in sp._actions for o in act.option_strings} for c, sp in subparsers.choices.items()}
    for command, option in re.findall(r"energyhost ([a-z][a-z-]+)[^\n`]*?(--[a-z][a-z-]*)", text):
        assert option in options[command], f"energyhost {command} has no {option}"
