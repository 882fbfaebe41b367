"""Session-wide reporting: whether Micro-Manager's demo adapters are in this run."""

from __future__ import annotations

import gc
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.demo_stand import ADAPTERS, DESCRIPTION, SKIP_REASON


def pytest_configure(config: Any) -> None:
    """No test writes to the user's ThinkScope home or Qt settings: both default to a
    temporary folder for the session (tests that need their own still set them)."""
    root = tempfile.mkdtemp(prefix="thinkscope-tests-")
    os.environ.setdefault("THINKSCOPE_HOME", os.path.join(root, "home"))
    os.environ.setdefault("THINKSCOPE_SETTINGS_DIR", os.path.join(root, "settings"))
    # `--screenshot` runs measure fps for 1 s, not 4 (the figures are bench material)
    os.environ.setdefault("THINKSCOPE_SCREENSHOT_SECONDS", "0.5,1")


@pytest.fixture(autouse=True)
def _collect_garbage_between_tests() -> Iterator[None]:
    """Collect each test's garbage at its end, then freeze what survives.

    PySide widgets caught in reference cycles are destroyed whenever the collector runs.
    Left to chance, that can be in the middle of the next test's Qt call that holds raw
    widget pointers (a segfault in `app.allWidgets()` was seen), so the collection runs
    here, at a known point. Freezing the survivors keeps each collection down to the
    objects one test made (a full one walks torch's and Qt's objects: up to a second)."""
    yield
    gc.collect()
    gc.freeze()


def pytest_report_header(config: Any) -> str:
    return f"Micro-Manager demo adapters: {DESCRIPTION}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ADAPTERS is not None:
        return
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if SKIP_REASON in str(getattr(r, "longrepr", ""))]
    if skipped:
        terminalreporter.write_line(
            f"NOTE: {len(skipped)} demo-stand tests skipped: {SKIP_REASON}", yellow=True)
