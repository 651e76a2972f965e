"""Test harness: markers by folder, and one real local stack per session.

The `stack` fixture starts PostgreSQL, S3, MLflow, Airflow and the prediction
service on free ports in a temporary folder, and stops them at the end.
Set MLPLATFORM_TEST_STACK=reuse to run against the stack `make local` started.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.fspath)).relative_to(TESTS).parts[0]
        marker = folder if folder in ("integration", "e2e") else "unit"
        item.add_marker(getattr(pytest.mark, marker))


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports() -> dict[str, int]:
    """A free port for each service, away from the defaults, plus SeaweedFS's extra ones."""
    rng = random.Random()
    taken: set[int] = set()

    def pick(span: int = 1, extra: tuple[int, ...] = ()) -> int:
        while True:
            base = rng.randrange(20000, 45000)
            wanted = [base + i for i in range(span)] + [base + e for e in extra]
            if not taken.intersection(wanted) and all(_free(p) for p in wanted):
                taken.update(wanted)
                return base

    return {
        "PG_PORT": pick(),
        "MINIO_PORT": pick(),
        "MINIO_PORT_UI": pick(extra=(10000,)),
        "SEAWEEDFS_PORT_BASE": pick(span=7),
        "MLFLOW_PORT": pick(),
        "AIRFLOW_PORT": pick(),
        "FASTAPI_PORT": pick(),
    }


@pytest.fixture(scope="session")
def stack() -> Iterator[object]:
    from mlplatform.localstack import LocalStack
    from mlplatform.settings import Settings, get_settings

    if os.environ.get("MLPLATFORM_TEST_STACK") == "reuse":
        settings = Settings()
        if any(h not in ("healthy", "done") for *_, h in LocalStack(settings).status()):
            pytest.fail("MLPLATFORM_TEST_STACK=reuse, but the local stack is not healthy: run `make local`")
        yield settings
        return

    state_dir = Path(tempfile.mkdtemp(prefix="mlplatform-stack-"))
    overrides = {key: str(value) for key, value in free_ports().items()}
    overrides.update({"STACK_DIR": str(state_dir), "PLATFORM_ENV": "test"})
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    get_settings.cache_clear()
    settings = get_settings()
    local = LocalStack(settings)
    try:
        local.up()
        yield settings
    finally:
        orphans = local.down()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
        if os.environ.get("MLPLATFORM_KEEP_STACK_DIR"):
            print(f"stack state kept in {state_dir}")
        else:
            shutil.rmtree(state_dir, ignore_errors=True)
        assert not orphans, f"processes outlived the stack's shutdown: {orphans}"
