"""What the service entrypoints do on the real stack: the MLflow database is created at start
when it is missing, and the S3 console's login reaches SeaweedFS without a command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


# MLflow in production mode: the basic-auth app, on a role whose password needs URL-encoding
PRODUCTION_SECRETS = {
    # Named here, not taken from the code's lists: the test must fail if the code forgets one.
    "PG_PASSWORD": "p@ss:w/rd%41#-prod-only",
    "MINIO_SECRET_ACCESS_KEY": "s3-secret-for-production",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-admin-for-production",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-csrf-for-production",
}


@pytest.fixture
def production_role(stack: Settings) -> Iterator[str]:
    role = f"prod_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(
        host=stack.PG_HOST,
        port=stack.PG_PORT,
        user=stack.PG_USER,
        password=stack.PG_PASSWORD,
        dbname="postgres",
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD %s").format(sql.Identifier(role)),
            (PRODUCTION_SECRETS["PG_PASSWORD"],),
        )
    yield role
    drop(stack, f"{role}_mlflow")
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    conn.close()


def test_production_mlflow_requires_a_login(
    stack: Settings, production_role: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local stack's production MLflow runs the basic-auth app: anonymous and wrong logins
    get 401, the platform's login reads and writes, and no password shows on a command line."""
    from mlflow import MlflowClient

    from mlplatform.localstack import free_ports
    from mlplatform.localstack.files import write_mlflow_auth_config
    from mlplatform.localstack.services import mlflow_auth_config, programs

    env = {
        **os.environ,
        **PRODUCTION_SECRETS,
        "PLATFORM_ENV": "production",
        "SERVICE_SECRETS": ",".join(PRODUCTION_SECRETS),
        "STACK_DIR": str(tmp_path),
        "PG_USER": production_role,
        "MLFLOW_PG_DATABASE": f"{production_role}_mlflow",
        "MLFLOW_PORT": str(free_ports()["MLFLOW_PORT"]),
        "MLFLOW_TRACKING_URI": "",
    }
    for key in ("PG_HOST", "PG_PORT", "MINIO_HOST", "MINIO_PORT"):
        env[key] = str(getattr(stack, key))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    prod = Settings()
    mlflow = next(p for p in programs(prod) if p.name == "mlflow")
    auth = mlflow_auth_config(prod)
    assert auth is not None and mlflow.env == {"MLFLOW_AUTH_CONFIG_PATH": str(auth)}
    write_mlflow_auth_config(auth)

    # Without the auth config the entrypoint refuses production.
    refused = subprocess.run(
        ["bash", "-c", mlflow.command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert refused.returncode == 1 and "needs MLflow's basic-auth" in refused.stderr

    log = (tmp_path / "mlflow.log").open("wb")
    server = subprocess.Popen(
        ["bash", "-c", mlflow.command],
        env={**env, **mlflow.env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=tmp_path,  # stack_processes finds the server's processes by it
    )
    url = prod.mlflow_tracking_uri
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        else:
            pytest.fail(f"MLflow did not start: {(tmp_path / 'mlflow.log').read_text()[-2000:]}")
        assert httpx.get(search, timeout=10).status_code == 401
        wrong = (prod.MLFLOW_TRACKING_USERNAME, "not-the-password")
        assert httpx.get(search, auth=wrong, timeout=10).status_code == 401
        login = (prod.MLFLOW_TRACKING_USERNAME, prod.MLFLOW_TRACKING_PASSWORD)
        assert httpx.get(search, auth=login, timeout=10).status_code == 200
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", login[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", login[1])
        client = MlflowClient(url)
        experiment = client.create_experiment(f"auth-{uuid.uuid4().hex[:6]}")
        assert client.get_experiment(experiment).lifecycle_stage == "active"
        for pid in stack_processes(tmp_path) or [server.pid]:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            for secret in PRODUCTION_SECRETS.values():
                assert secret.encode() not in cmdline, f"pid {pid} shows a secret"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
