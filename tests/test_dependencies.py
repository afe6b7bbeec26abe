"""pyproject.toml declares what the code imports, and the code imports what it declares.

Library packages (installed) against ``[project] dependencies``; tests and benchmarks against
those plus the ``dev`` extra.  Import names map to distributions through the installed
metadata (``importlib.metadata.packages_distributions``), e.g. ``paho`` -> ``paho-mqtt``.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the packages setuptools installs, as pyproject.toml lists them ("core*" -> "core")
LIBRARY = tuple(p.rstrip("*") for p in tomllib.loads((ROOT / "pyproject.toml").read_text())
                ["tool"]["setuptools"]["packages"]["find"]["include"])
OURS = set(LIBRARY) | {"tests", "bench"}
# used by the tools, not imported: the test runner's plugins, the linter, the ASGI server's CLI
TOOLS = {"pytest-timeout", "ruff", "uvicorn"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    def names(reqs):
        return {_norm(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for r in reqs}
    return names(project["dependencies"]), names(project["optional-dependencies"]["dev"])


def _imports(paths) -> dict[str, str]:
    """top-level module -> a file importing it (third-party only)."""
    local = {p.stem for p in (ROOT / "tests").rglob("*.py")} | {p.stem for p in (ROOT / "bench").glob("*.py")}
    local |= {p.parent.name for p in (ROOT / "tests").rglob("__init__.py")}      # tests/support
    out: dict[str, str] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "importorskip"
                  and node.args and isinstance(node.args[0], ast.Constant)):
                mods = [node.args[0].value]          # pytest.importorskip("sunspec2.modbus.client")
            else:
                continue
            for m in mods:
                top = m.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OURS and top not in local \
                        and top != "__future__":
                    out.setdefault(top, str(path.relative_to(ROOT)))
    return out


def _dists(modules: dict[str, str]) -> dict[str, str]:
    mapping = packages_distributions()
    out = {}
    for mod, where in modules.items():
        dists = mapping.get(mod)
        assert dists, f"{where}: imports {mod!r}, which no installed distribution provides"
        out[_norm(dists[0])] = where
    return out


def test_library_imports_are_declared_and_declared_are_imported():
    runtime, _dev = _declared()
    files = [p for pkg in LIBRARY for p in (ROOT / pkg).rglob("*.py")]
    used = _dists(_imports(files))
    undeclared = {d: w for d, w in used.items() if d not in runtime}
    assert not undeclared, f"imported but not in [project] dependencies: {undeclared}"
    unused = runtime - set(used) - TOOLS
    assert not unused, f"declared in [project] dependencies but imported nowhere in {LIBRARY}: {sorted(unused)}"


def test_test_and_bench_imports_are_declared():
    runtime, dev = _declared()
    files = list((ROOT / "tests").rglob("*.py")) + list((ROOT / "bench").glob("*.py"))
    used = _dists(_imports(files))
    undeclared = {d: w for d, w in used.items() if d not in runtime | dev}
    assert not undeclared, f"imported by tests/bench but declared nowhere: {undeclared}"
    unused = dev - set(used) - TOOLS
    assert not unused, f"dev extra declares what no test or benchmark imports: {sorted(unused)}"
