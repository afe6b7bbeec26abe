"""The tests mirror the code: ``tests/<package>/test_<module>.py``, helpers in ``tests/support/``.

* no test module imports another test module (shared code lives in ``support``, fixtures in
  ``conftest.py``), so a test file can be moved, split or deleted without breaking another;
* every test module sits in a folder named after a library package, or in ``e2e/`` (end to end
  across many modules), ``faults/`` (fault injection) or ``security/`` (probe and hardening);
* ``support/`` holds no tests.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
PACKAGES = {p.rstrip("*") for p in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
            ["packages"]["find"]["include"]}
CROSS_CUTTING = {"e2e", "faults", "security"}
AT_ROOT = {"test_layout.py", "test_dependencies.py", "test_layering.py", "test_repo_hygiene.py",
           "test_architecture_doc.py", "test_code_size.py"}                       # about the repository itself


def _test_modules() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def imported_modules(source: str) -> set[str]:
    """Every module name an ``import`` or ``from ... import`` statement names, at any depth."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if base:
                out.add(base)
            # ``from tests import test_modbus``, ``from . import test_x``: the names may be modules
            out.update(f"{base}.{a.name}" if base else a.name for a in node.names if a.name.startswith("test_"))
    return out


def imports_of_test_modules(source: str) -> list[str]:
    """Names of test modules (any dotted part starting with ``test_``) imported by ``source``."""
    return sorted(m for m in imported_modules(source) if any(part.startswith("test_") for part in m.split(".")))


def test_the_checker_sees_every_form_of_import():
    src = ("import test_api\nfrom test_report_month import SITE\nfrom tests.test_modbus import _dev\n"
           "def f():\n    from test_api_hardening import served\nfrom . import test_x\n"
           "from support.api_env import build_env\nimport core.units\n")
    assert imports_of_test_modules(src) == ["test_api", "test_api_hardening", "test_report_month",
                                            "test_x", "tests.test_modbus"]


def test_no_test_module_imports_another_test_module():
    modules = _test_modules()
    assert len(modules) > 80, len(modules)
    bad = {str(p.relative_to(ROOT)): names for p in modules
           if (names := imports_of_test_modules(p.read_text(encoding="utf-8")))}
    assert bad == {}, f"move what is shared into tests/support/ or a conftest.py: {bad}"


def test_helpers_and_conftests_import_no_test_module_either():
    files = [*TESTS.rglob("conftest.py"), *(TESTS / "support").rglob("*.py")]
    assert (TESTS / "support" / "__init__.py") in files
    bad = {str(p.relative_to(ROOT)): names for p in files
           if (names := imports_of_test_modules(p.read_text(encoding="utf-8")))}
    assert bad == {}


def test_every_test_module_lives_in_a_package_folder_or_a_cross_cutting_one():
    assert {"core", "collector", "analytics", "workflow", "reports", "api", "simulators", "energyhost"} <= PACKAGES
    misplaced = []
    for p in _test_modules():
        parts = p.relative_to(TESTS).parts
        if len(parts) == 1:
            ok = parts[0] in AT_ROOT
        else:
            ok = parts[0] in PACKAGES | CROSS_CUTTING
            if parts[0] in PACKAGES and len(parts) > 2:      # tests/core/influx/ mirrors core/influx/
                ok = (ROOT / Path(*parts[:-1])).is_dir()
        if not ok:
            misplaced.append(str(p.relative_to(ROOT)))
    assert misplaced == []


def test_support_holds_no_tests():
    found = []
    for p in (TESTS / "support").rglob("*.py"):
        assert not p.name.startswith("test_"), p
        for node in ast.parse(p.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                found.append(f"{p.name}::{node.name}")
    assert found == []
