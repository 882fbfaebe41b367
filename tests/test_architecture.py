"""Layering rules: only thinkscope_gui/ui imports Qt; hardware/ never imports torch.

Checked twice: by importing every module of the headless packages in a fresh interpreter
and looking at sys.modules (catches indirect imports), and by scanning their source with
ast (catches imports hidden in functions that the first check never runs).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QT = ("PySide6", "qtpy", "pyqtgraph", "shiboken6")
HEADLESS = {
    "hardware": (*QT, "torch"),
    "thinkscope_gui/pairs": QT,
    "thinkscope_gui/learn": QT,
    "thinkscope_gui/cli": QT,
}


def _modules(package_dir: str) -> list[str]:
    base = ROOT / package_dir
    mods = []
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods.append(".".join(parts))
    return mods


_PROBE = """
import importlib, json, sys
mods, banned = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for m in mods:
    importlib.import_module(m)
print(json.dumps(sorted({n.split('.')[0] for n in sys.modules} & set(banned))))
"""


@pytest.mark.parametrize("package_dir", sorted(HEADLESS))
def test_importing_headless_package_loads_no_banned_module(package_dir: str) -> None:
    banned = HEADLESS[package_dir]
    mods = _modules(package_dir)
    assert mods, f"no modules found under {package_dir}"
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(mods), json.dumps(list(banned))],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing {package_dir} pulled in {loaded}"


def _imported_roots(tree: ast.AST) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
        elif (  # importlib.import_module("PySide6...") / __import__("...")
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and getattr(node.func, "attr", getattr(node.func, "id", ""))
            in ("import_module", "__import__")
        ):
            roots.add(node.args[0].value.split(".")[0])
    return roots


@pytest.mark.parametrize("package_dir", sorted(HEADLESS))
def test_source_of_headless_package_has_no_banned_import(package_dir: str) -> None:
    banned = set(HEADLESS[package_dir])
    offenders = []
    for path in sorted((ROOT / package_dir).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        if hit := _imported_roots(tree) & banned:
            offenders.append(f"{path.relative_to(ROOT)}: {sorted(hit)}")
    assert not offenders, "banned imports:\n" + "\n".join(offenders)


def test_scanner_sees_hidden_imports() -> None:
    """The AST check must catch lazy and dynamic imports, or it proves nothing."""
    src = (
        "def f():\n    from PySide6 import QtCore\n"
        "def g():\n    import importlib\n    importlib.import_module('pyqtgraph.widgets')\n"
        "import torch.nn as nn\n"
    )
    assert {"PySide6", "pyqtgraph", "torch"} <= _imported_roots(ast.parse(src))
