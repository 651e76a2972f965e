"""e2e ordering and reporting.

The benchmark smoke runs and the fault tests go last: they need the champion the pipeline
tests train (and must not replace it before those run), and the fault tests freeze and kill
services. The figures they measure are printed as one table at the end of the session.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from figures import FIGURES, table

LAST = ("test_benchmarks.py", "test_faults.py")


@pytest.hookimpl(trylast=True)  # after the root conftest's sort by layer
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = Path(str(item.fspath)).name
        return LAST.index(name) + 1 if name in LAST else 0

    items.sort(key=rank)  # stable: everything else keeps its order


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.write_sep("=", "figures measured on the real stack")
        terminalreporter.write_line(table())
