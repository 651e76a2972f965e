"""Test harness: markers by folder, and one real local stack per session.

The `stack` fixture starts PostgreSQL, S3, MLflow, Airflow and the prediction
service on free ports in a temporary folder, and stops them at the end.
Set MLPLATFORM_TEST_STACK=reuse to run against the stack `make local` started.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
# Airflow reads its configuration when first imported: give in-process imports
# (the DAG-integrity test) a throwaway home before any test module loads.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="mlplatform-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(TESTS.parent / "airflow" / "dags"))


LAYERS = ("unit", "integration", "e2e")
# The session stack's start, per phase: shown at the end of the run (CI logs keep it).
START_REPORT: list[str] = []


def _layer(item: pytest.Item) -> str:
    folder = Path(str(item.fspath)).relative_to(TESTS).parts[0]
    return folder if folder in LAYERS else "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(getattr(pytest.mark, _layer(item)))
    # Fast feedback first: unit tests fail before the stack is even started. The e2e files build
    # on each other's state (a trained champion first; the destructive faults last).
    items.sort(key=lambda item: (LAYERS.index(_layer(item)), _e2e_rank(item)))


# test_celery right after the pipelines: its own second stack, stopped before the faults run.
E2E_ORDER = (
    "test_pipelines",
    "test_celery",
    "test_serving_e2e",
    "test_ui_journeys",
    "test_monitoring",
)


def _e2e_rank(item: pytest.Item) -> int:
    stem = Path(str(item.fspath)).stem
    return E2E_ORDER.index(stem) if stem in E2E_ORDER else len(E2E_ORDER)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for report in START_REPORT:
        terminalreporter.write_sep("-", "local stack start")
        terminalreporter.write_line(report)


@pytest.fixture(scope="session")
def stack() -> Iterator[object]:
    from local_stacks import temporary_stack

    from mlplatform.localstack import LocalStack
    from mlplatform.settings import Settings

    if os.environ.get("MLPLATFORM_TEST_STACK") == "reuse":
        settings = Settings()
        if any(h not in ("healthy", "done") for *_, h in LocalStack(settings).status()):
            pytest.fail(
                "MLPLATFORM_TEST_STACK=reuse, but the local stack is not healthy: run `make local`"
            )
        yield settings
        return

    with temporary_stack(export=True, report=START_REPORT) as settings:
        yield settings
