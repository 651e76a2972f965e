"""A real local stack on free ports in a temporary folder: the session's (tests/conftest.py)
and the second one the Celery test starts beside it (tests/e2e/test_celery.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from mlplatform.localstack import LocalStack, free_ports
from mlplatform.settings import Settings, get_settings


@contextlib.contextmanager
def temporary_stack(
    overrides: dict[str, str] | None = None, *, export: bool, report: list[str]
) -> Iterator[Settings]:
    """Start a stack, yield its settings, stop it and check that no process outlived it.

    export: also put its settings in os.environ (and get_settings()) for the code under test;
    a second stack beside the session's passes its Settings explicitly instead.
    report: gets the start's phase times.
    """
    state_dir = Path(tempfile.mkdtemp(prefix="mlplatform-stack-"))
    values = {key: str(value) for key, value in free_ports().items()}
    values.update({"STACK_DIR": str(state_dir), "PLATFORM_ENV": "test", **(overrides or {})})
    saved = {key: os.environ.get(key) for key in values}
    if export:
        os.environ.update(values)
        get_settings.cache_clear()
        settings = get_settings()
    else:
        # Its own Airflow home: the session's environment names a throwaway one for in-process
        # Airflow imports (tests/conftest.py), which the session's stack uses.
        values.setdefault("AIRFLOW_HOME", str(state_dir / "airflow"))
        settings = Settings(**values)  # type: ignore[arg-type]
    local = LocalStack(settings)
    try:
        started = time.monotonic()
        local.up(timeout=900, quiet=True)  # generous: CI machines may be busy
        report.append(
            f"local stack healthy after {time.monotonic() - started:.0f} s; " + local.phase_report()
        )
        yield settings
    finally:
        orphans = local.down()
        if export:
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
