"""Session-wide reporting: whether Micro-Manager's demo adapters are in this run."""

from __future__ import annotations

from typing import Any

from tests.demo_stand import ADAPTERS, DESCRIPTION


def pytest_report_header(config: Any) -> str:
    return f"Micro-Manager demo adapters: {DESCRIPTION}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ADAPTERS is None:
        terminalreporter.write_line(
            f"NOTE: demo-stand tests skipped: Micro-Manager demo adapters {DESCRIPTION}",
            yellow=True)
