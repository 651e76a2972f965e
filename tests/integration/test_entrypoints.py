"""What the service entrypoints do on the real stack: the MLflow database is created at start
when it is missing, and the S3 console's login reaches SeaweedFS without a command line."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg2
import pytest
from psycopg2 import sql

from mlplatform.dbinit import ensure_database
from mlplatform.localstack import stack_processes
from mlplatform.settings import Settings


def databases(s: Settings) -> dict[str, str]:
    """Every database of the server, with its owner."""
    conn = psycopg2.connect(
        host=s.PG_HOST, port=s.PG_PORT, user=s.PG_USER, password=s.PG_PASSWORD, dbname="postgres"
    )
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE NOT datistemplate"
            )
            return dict(cur.fetchall())
    finally:
        conn.close()


def drop(s: Settings, name: str) -> None:
    conn = psycopg2.connect(
        host=s.PG_HOST, port=s.PG_PORT, user=s.PG_USER, password=s.PG_PASSWORD, dbname="postgres"
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    finally:
        conn.close()


@pytest.fixture
def new_name(stack: Settings) -> Iterator[str]:
    # Quotes and capitals: the name reaches SQL as an identifier, never as text.
    name = f'mlflow "Renamed" {uuid.uuid4().hex[:8]}'
    yield name
    drop(stack, name)


def test_a_missing_database_is_created_once_and_owned_by_the_role(
    stack: Settings, new_name: str
) -> None:
    assert new_name not in databases(stack)
    assert ensure_database(stack, new_name) is True
    assert databases(stack)[new_name] == stack.PG_USER
    assert ensure_database(stack, new_name) is False  # idempotent
    assert ensure_database(stack, stack.MLFLOW_PG_DATABASE) is False  # the stack's own


def test_the_mlflow_start_step_creates_a_renamed_database(stack: Settings, new_name: str) -> None:
    """What the MLflow entrypoint runs before the server, for a renamed MLFLOW_PG_DATABASE."""
    env = {**os.environ, "MLFLOW_PG_DATABASE": new_name}
    for key in ("PG_HOST", "PG_PORT", "PG_USER", "PG_PASSWORD"):
        env[key] = str(getattr(stack, key))
    cmd = [sys.executable, "-m", "mlplatform.dbinit"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, cwd="/")
    assert first.returncode == 0, first.stderr
    assert f"created database {new_name}" in first.stderr
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, cwd="/")
    assert second.returncode == 0 and second.stderr == "", second.stderr
    assert databases(stack)[new_name] == stack.PG_USER


def test_the_mlflow_start_step_fails_loudly_without_postgres(tmp_path: Path) -> None:
    env = {**os.environ, "PG_HOST": "127.0.0.1", "PG_PORT": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mlplatform.dbinit"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot create database") and "Traceback" not in (
        result.stderr
    )


def test_the_s3_console_asks_for_the_login(stack: Settings) -> None:
    """SeaweedFS gets its console login from WEED_ADMIN_* (off its command line): without a
    session the console sends the browser to its login page."""
    resp = httpx.get(f"http://{stack.MINIO_HOST}:{stack.MINIO_PORT_UI}/", timeout=10)
    assert resp.status_code in (302, 303, 307), resp.status_code
    assert resp.headers["location"].rstrip("/").endswith("/login")
    # And no process of the stack shows the secret in its arguments.
    secret = stack.MINIO_SECRET_ACCESS_KEY.encode()
    pids = stack_processes(stack.STACK_DIR)
    assert pids
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        assert secret not in cmdline, f"pid {pid} shows the S3 secret: {cmdline[:200]!r}"
