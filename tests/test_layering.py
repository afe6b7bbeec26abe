"""The dependency rule of docs/architecture.md, checked on every module's imports (ast).

No arrow runs upward: ``core`` imports nothing of ours; ``collector``, ``simulators``, ``analytics`` and
``workflow`` import only ``core``; ``reports`` imports ``core``, ``analytics``, ``workflow``; ``api``
imports those and ``reports``; ``energyhost`` imports anything and nothing imports it.  Imports inside
functions count too, and so does ``importlib.import_module("...")`` with a literal name.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "collector": {"core"},
    "simulators": {"core"},
    "analytics": {"core"},
    "workflow": {"core"},
    "reports": {"core", "analytics", "workflow"},
    "api": {"core", "analytics", "workflow", "reports"},
    "energyhost": {"core", "collector", "simulators", "analytics", "workflow", "reports", "api"},
}
PACKAGES = set(ALLOWED)


def imported_packages(source: str, package: str) -> list[tuple[int, str]]:
    """(line, top-level package of ours) for every import in ``source``, a module of ``package``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [package] if node.level else [node.module or ""]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")):
            names = [node.args[0].value]
        found += [(node.lineno, n.split(".")[0]) for n in names if n.split(".")[0] in PACKAGES]
    return found


def upward_arrows(source: str, package: str, where: str) -> list[str]:
    return [f"{where}:{line}: {package} imports {target}"
            for line, target in imported_packages(source, package)
            if target != package and target not in ALLOWED[package]]


def modules() -> list[tuple[str, Path]]:
    return [(pkg, path) for pkg in sorted(PACKAGES) for path in sorted((ROOT / pkg).rglob("*.py"))]


def test_the_checker_sees_an_upward_arrow():
    assert upward_arrows("from api.main import build_app\n", "core", "x.py") == ["x.py:1: core imports api"]
    assert upward_arrows("def f():\n    import energyhost.cli\n", "api", "y.py") == \
        ["y.py:2: api imports energyhost"]
    assert upward_arrows("importlib.import_module('reports.render')\n", "workflow", "z.py") == \
        ["z.py:1: workflow imports reports"]
    assert upward_arrows("from . import db\nimport numpy\nfrom core import ids\n", "workflow", "w.py") == []


def test_every_package_exists_and_imports_are_seen():
    assert all((ROOT / pkg / "__init__.py").is_file() for pkg in PACKAGES)
    edges = {(pkg, target) for pkg, path in modules()
             for _, target in imported_packages(path.read_text(encoding="utf-8"), pkg) if target != pkg}
    # the arrows the architecture relies on are really there, so the scan is not looking at nothing
    assert {("api", "workflow"), ("reports", "analytics"), ("collector", "core"),
            ("energyhost", "api")} <= edges


def test_no_arrow_runs_upward():
    bad: list[str] = []
    for pkg, path in modules():
        bad += upward_arrows(path.read_text(encoding="utf-8"), pkg, str(path.relative_to(ROOT)))
    assert not bad, "\n".join(bad)
