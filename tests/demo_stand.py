"""Where Micro-Manager's own demo device adapters are, for the tests that need them.

The adapters (DemoCamera, Utilities: real C++ devices loaded by the real MMCore) are found
the way pymmcore-plus finds any Micro-Manager: ``MICROMANAGER_PATH`` first, then
``pymmcore_plus.find_micromanager()``. ``make test`` and ``.ci/run`` build them with
``../shared/micromanager/build.sh`` when g++ is there. Without them the demo-stand tests
skip, with the reason below in the session header and summary.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_CFG = ROOT.parent / "shared" / "micromanager" / "MMConfig_demo.cfg"
BUILD_HINT = ("set MICROMANAGER_PATH to a folder with libmmgr_dal_DemoCamera, e.g. "
              "MICROMANAGER_PATH=$(../shared/micromanager/build.sh) make test")


def _has_demo_adapters(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*mmgr_dal_DemoCamera*")) and any(
        folder.glob("*mmgr_dal_Utilities*"))


def find_demo_stand() -> tuple[Path | None, Path | None, str]:
    """(adapter folder, MMConfig_demo.cfg, a one-line description or skip reason)."""
    candidates: list[Path] = []
    if env := os.environ.get("MICROMANAGER_PATH"):
        candidates.append(Path(env))
    try:
        from pymmcore_plus import find_micromanager

        found = find_micromanager()
        if found:
            candidates.append(Path(str(found)))
    except Exception:  # noqa: BLE001 - discovery is best effort
        pass
    for folder in candidates:
        if _has_demo_adapters(folder):
            cfg = folder / "MMConfig_demo.cfg"
            cfg = cfg if cfg.is_file() else SHARED_CFG
            if cfg.is_file():
                return folder, cfg, f"{folder} ({cfg.name})"
            return None, None, f"adapters in {folder} but no MMConfig_demo.cfg beside them"
    where = ", ".join(str(c) for c in candidates) or "nowhere (no MICROMANAGER_PATH)"
    return None, None, f"not found (looked in {where}); {BUILD_HINT}"


ADAPTERS, DEMO_CFG, DESCRIPTION = find_demo_stand()
SKIP_REASON = f"Micro-Manager demo adapters {DESCRIPTION}"

#: mark for tests that need the real C++ demo adapters
needs_demo = pytest.mark.skipif(ADAPTERS is None, reason=SKIP_REASON)


def demo_env() -> dict[str, str]:
    """Environment for subprocesses that must find the same adapters."""
    env = dict(os.environ)
    if ADAPTERS is not None:
        env["MICROMANAGER_PATH"] = str(ADAPTERS)
    return env
