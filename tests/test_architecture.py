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


# --- the full layer order -----------------------------------------------------------------
#: first-party layers each part may import (besides itself); ui may import everything
_BASE = {"thinkscope_gui.logs", "thinkscope_gui.tiff", "thinkscope_gui.jobs"}
LAYERS = {
    "hardware": set(),
    "thinkscope_gui.logs": set(),
    "thinkscope_gui.tiff": set(),
    "thinkscope_gui.jobs": {"thinkscope_gui.logs"},
    "thinkscope_gui.pairs": {"hardware", *_BASE},
    "thinkscope_gui.learn": {"hardware", "thinkscope_gui.pairs", *_BASE},
    "thinkscope_gui.app_model": {"hardware", "thinkscope_gui.pairs", "thinkscope_gui.learn",
                                 *_BASE},
    "thinkscope_gui.cli": {"hardware", "thinkscope_gui.pairs", "thinkscope_gui.learn",
                           "thinkscope_gui.app_model", *_BASE},
}
#: named exceptions to the order, each with its reason (none: main.py, above the layers,
#: registers the GUI's own `bench live` with cli/bench.py)
ALLOWED: set[tuple[str, str]] = set()
#: besides hardware/, cli/ and tests, only these modules exist to make simulator data
SIM_USERS = {"thinkscope_gui/learn/sim_source.py", "thinkscope_gui/learn/evaluate.py"}


def _first_party_imports(rel: str, src: str) -> set[str]:
    """Dotted first-party modules a file imports (relative imports resolved)."""
    tree = ast.parse(src, filename=rel)
    pkg = list(Path(rel).with_suffix("").parts)
    if pkg[-1] == "__init__":
        pkg = pkg[:-1] + ["x"]
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[:-node.level]
                mod = ".".join(base + ([node.module] if node.module else []))
                names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            elif node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        out.update(n for n in names if n.split(".")[0] in ("hardware", "thinkscope_gui"))
    return out


def _layer(module: str) -> str | None:
    for layer in sorted(LAYERS, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def layer_violations(files: dict[str, str]) -> list[str]:
    """Imports (``{relative path: source}``) that go up or sideways in the layer order,
    and simulator imports from outside the modules allowed to use it."""
    bad: list[str] = []
    for rel, src in files.items():
        own = _layer(".".join(Path(rel).with_suffix("").parts))
        for mod in sorted(_first_party_imports(rel, src)):
            if mod.startswith("hardware.sim") and not (
                    rel.startswith(("hardware/", "thinkscope_gui/cli/")) or rel in SIM_USERS):
                bad.append(f"{rel}: imports the simulator (hardware.sim)")
            if own is None:  # ui: may import every layer
                continue
            target = _layer(mod)
            if mod in ("thinkscope_gui", "thinkscope_gui.x") or any(
                    rel == f and (mod == m or mod.startswith(m + ".")) for f, m in ALLOWED):
                continue
            if target != own and target not in LAYERS[own]:
                bad.append(f"{rel}: {own} may not import {target or mod}")
    return sorted(set(bad))


def test_layer_order_is_kept() -> None:
    files = [*ROOT.glob("hardware/**/*.py"), *ROOT.glob("thinkscope_gui/**/*.py")]
    sources = {str(f.relative_to(ROOT)): f.read_text(encoding="utf-8") for f in files
               if f.relative_to(ROOT).parts[:2] != ("thinkscope_gui", "ui")}
    assert len(sources) > 40
    assert not (v := layer_violations(sources)), "\n".join(v)


def test_layer_check_sees_violations() -> None:
    """Offending modules in the tree's shape are reported, one line per broken rule."""
    cases = {
        "hardware/zz_bad.py": "from thinkscope_gui.pairs import store\n",
        "thinkscope_gui/pairs/zz_bad.py": "def f():\n    from ..learn import train\n",
        "thinkscope_gui/learn/zz_bad.py": "from hardware.sim.optics import SimOptics\n",
        "thinkscope_gui/learn/zz_bad2.py": "from thinkscope_gui.cli import acquire\n",
        "thinkscope_gui/jobs.py": "import thinkscope_gui.ui.app\n",
        "thinkscope_gui/learn/ok.py": "from hardware.optics import psf_from_optics\n"
                                      "from ..pairs.store import PairStore\n",
    }
    found = layer_violations(cases)
    assert len(found) == 5, found
    assert any("simulator" in f for f in found) and not any("ok.py" in f for f in found)
