"""Local-stack logic that needs no running services."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from mlplatform.errors import PlatformError
from mlplatform.localstack import (
    LocalStack,
    check_prerequisites,
    free_ports,
    ports,
    programs,
    stack_processes,
)
from mlplatform.settings import REPO_ROOT, Settings


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(_env_file=None, STACK_DIR=tmp_path, **overrides)  # type: ignore[call-arg]


def test_a_port_in_use_is_named_with_its_variable(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = _settings(tmp_path, **{**free_ports(), "FASTAPI_PORT": port})
        with pytest.raises(PlatformError) as err:
            check_prerequisites(settings)
    assert str(err.value) == (
        f"port {port} (FASTAPI_PORT) is already in use: stop what uses it or set another port in .env"
    )


def test_free_ports_are_free_and_distinct(tmp_path: Path) -> None:
    check_prerequisites(_settings(tmp_path, **free_ports()))


def test_every_port_is_distinct_by_default(tmp_path: Path) -> None:
    values = list(ports(_settings(tmp_path)).values())
    assert len(values) == len(set(values))


def test_a_stale_pid_file_is_cleared(tmp_path: Path) -> None:
    stack = LocalStack(_settings(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    stack.pidfile.write_text(str(dead.pid))
    stack.sock.write_text("")
    assert stack.supervisord_pid() is None
    assert not stack.pidfile.exists() and not stack.sock.exists()


def test_a_pid_reused_by_another_program_is_not_taken_for_supervisord(tmp_path: Path) -> None:
    stack = LocalStack(_settings(tmp_path))
    stack.pidfile.write_text(str(os.getpid()))  # alive, but pytest, not supervisord
    assert stack.supervisord_pid() is None


def test_orphans_are_found_by_working_directory(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "30"], cwd=tmp_path)
    try:
        assert child.pid in stack_processes(tmp_path.resolve())
    finally:
        child.kill()
        child.wait()


def test_every_program_runs_an_entrypoint_of_its_service_folder(tmp_path: Path) -> None:
    for program in programs(_settings(tmp_path)):
        script = Path(program.command.split()[1])
        assert script.is_file() and os.access(script, os.X_OK), program
        assert script.parent.parent == REPO_ROOT
        assert script.parent.name in ("postgres", "minio", "mlflow", "airflow", "fastapi")
