"""The local stack's own behaviour: loopback only, idempotent start, clear errors."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from mlplatform.errors import PlatformError
from mlplatform.localstack import (
    LocalStack,
    check_prerequisites,
    ports,
    postgres_binaries,
    stack_processes,
)
from mlplatform.localstack.prereqs import prometheus_binary
from mlplatform.localstack.services import airflow_schema_current
from mlplatform.settings import Settings


def _prometheus_in_stack(stack: Settings) -> bool:
    # Optional in the stack, required here: CI installs it, so its claims are tested.
    assert prometheus_binary(), "prometheus not found: apt-get install -y prometheus"
    return any(p.name == "prometheus" for p in LocalStack(stack).programs)


def _listening_sockets(pids: set[int]) -> list[tuple[str, int]]:
    """(address, port) of every TCP listener owned by one of `pids`."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = str(fd.readlink()) if fd.is_symlink() else ""
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except (FileNotFoundError, PermissionError):
            continue
    found = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A = LISTEN
                continue
            addr_hex, port_hex = fields[1].split(":")
            raw = bytes.fromhex(addr_hex)
            if family == socket.AF_INET:
                addr = socket.inet_ntop(family, raw[::-1])
            else:
                addr = socket.inet_ntop(
                    family, b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                )
            found.append((addr, int(port_hex, 16)))
    return found


def test_no_service_listens_beyond_loopback(stack: Settings) -> None:
    pids = set(stack_processes(stack.STACK_DIR.resolve()))
    assert len(pids) >= 8
    listeners = _listening_sockets(pids)
    assert listeners, "found no listening sockets of the stack"
    expected = {
        stack.PG_PORT,
        stack.MINIO_PORT,
        stack.MLFLOW_PORT,
        stack.AIRFLOW_PORT,
        stack.FASTAPI_PORT,
    }
    assert _prometheus_in_stack(stack)
    expected.add(stack.PROMETHEUS_PORT)
    assert expected <= {port for _, port in listeners}
    outside = [(a, p) for a, p in listeners if a not in ("127.0.0.1", "::1")]
    assert not outside, f"listening beyond loopback: {outside}"


def test_every_service_got_its_own_port(stack: Settings) -> None:
    """The session's ports were allocated distinct, and each is held by the stack itself."""
    named = ports(stack, prometheus=_prometheus_in_stack(stack))
    assert len(set(named.values())) == len(named), named
    held = {port for _, port in _listening_sockets(set(stack_processes(stack.STACK_DIR.resolve())))}
    for name in ("PG_PORT", "MINIO_PORT", "MINIO_PORT_UI", "MLFLOW_PORT", "AIRFLOW_PORT"):
        assert named[name] in held, f"{name} {named[name]} is not held by the stack"
    assert named["FASTAPI_PORT"] in held and named["PROMETHEUS_PORT"] in held


def test_prometheus_scrapes_the_prediction_service(stack: Settings) -> None:
    assert _prometheus_in_stack(stack)
    deadline = time.monotonic() + 60  # one scrape interval (15 s) and then some
    while True:
        targets = httpx.get(f"{stack.prometheus_url}/api/v1/targets", timeout=5).json()
        fastapi = [t for t in targets["data"]["activeTargets"] if t["labels"]["job"] == "fastapi"]
        assert fastapi, targets
        if fastapi[0]["health"] == "up":
            break
        assert time.monotonic() < deadline, f"the fastapi target never came up: {fastapi}"
        time.sleep(2)
    assert fastapi[0]["scrapeUrl"] == f"{stack.fastapi_url}/metrics"
    query = httpx.get(
        f"{stack.prometheus_url}/api/v1/query", params={"query": 'up{job="fastapi"}'}, timeout=5
    ).json()
    assert query["data"]["result"][0]["value"][1] == "1"


def test_postgres_wants_a_password_and_its_socket_is_private(stack: Settings) -> None:
    socket_dir = stack.STACK_DIR / "postgres" / "socket"
    info = socket_dir.stat()
    assert stat.S_IMODE(info.st_mode) == 0o700
    if os.geteuid() == 0:
        assert info.st_uid != 0  # owned by the unprivileged user PostgreSQL runs as
    pg = postgres_binaries()
    assert pg is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}

    def psql(host: str, password: str | None) -> subprocess.CompletedProcess[str]:
        where = ["-h", host, "-p", str(stack.PG_PORT), "-U", stack.PG_USER, "-d", stack.PG_DATABASE]
        return subprocess.run(
            [str(pg.bin_dir / "psql"), *where, "-w", "-tAc", "SELECT 1"],
            env={**env, "PGPASSWORD": password} if password else env,
            capture_output=True,
            text=True,
        )

    for host in (str(socket_dir), "127.0.0.1"):
        denied = psql(host, None)
        assert denied.returncode != 0, f"{host}: connected without a password"
        assert "password" in denied.stderr, denied.stderr
    allowed = psql(str(socket_dir), stack.PG_PASSWORD)
    assert allowed.stdout.strip() == "1", allowed.stderr


def test_a_started_stack_has_airflows_schema_current_so_restarts_skip_the_migration(
    stack: Settings,
) -> None:
    assert airflow_schema_current(stack)


def test_starting_twice_is_safe(stack: Settings) -> None:
    local = LocalStack(stack)
    pids_before = {name: pid for name, _, pid, _ in local.status()}
    local.up(timeout=60, quiet=True)
    assert local.skipped == {"airflow-init"}  # the schema is current: no `airflow db migrate`
    rows = local.status()
    assert all(health in ("healthy", "done") for *_, health in rows), rows
    assert {name: pid for name, _, pid, _ in rows} == pids_before  # nothing was restarted


def test_a_second_stack_on_the_same_ports_is_refused_with_the_port_named(stack: Settings) -> None:
    with pytest.raises(PlatformError, match=rf"port {stack.PG_PORT} \(PG_PORT\) is already in use"):
        check_prerequisites(stack)


def test_status_reports_every_service_healthy(stack: Settings) -> None:
    rows = LocalStack(stack).status()
    assert [r[0] for r in rows] == [
        "postgres",
        "s3",
        "airflow-init",
        "mlflow",
        "fastapi",
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        *(["prometheus"] if _prometheus_in_stack(stack) else []),
    ]
    assert all(health in ("healthy", "done") for *_, health in rows), rows


def test_a_crashed_supervisor_is_recovered(stack: Settings) -> None:
    """kill -9 of supervisord leaves a stale PID file and orphaned services; `up` recovers."""
    import os
    import signal
    import time

    local = LocalStack(stack)
    pid = local.supervisord_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    while Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    assert local.pidfile.exists()  # stale: its process is gone
    assert local.supervisord_pid() is None
    assert stack_processes(local.dir)  # the services outlived their supervisor

    local.up(timeout=240, quiet=True)
    new_pid = local.supervisord_pid()
    assert new_pid is not None and new_pid != pid
    assert all(health in ("healthy", "done") for *_, health in local.status())


def test_postgres_runs_from_the_pgserver_wheel_when_the_system_has_none() -> None:
    """The local stack's PostgreSQL entrypoint on the wheel's binaries, as the stack runs it."""
    import psycopg2

    from mlplatform.localstack import free_ports
    from mlplatform.localstack.prereqs import PG_OS_USER, ensure_postgres_user, pgserver_bin_dir
    from mlplatform.settings import REPO_ROOT

    wheel = pgserver_bin_dir()
    assert wheel is not None
    folder = Path(tempfile.mkdtemp(prefix="mlplatform-pgserver-"))
    port = free_ports()["PG_PORT"]
    user: dict[str, object] = {}
    if os.geteuid() == 0:  # PostgreSQL refuses root: run it as the stack does
        ensure_postgres_user()
        shutil.chown(folder, PG_OS_USER, PG_OS_USER)
        user = {"user": PG_OS_USER, "group": PG_OS_USER, "extra_groups": []}
    env = {
        "PATH": os.environ["PATH"],
        "PG_BIN": str(wheel),
        "PGDATA": str(folder / "data"),
        "PG_PORT": str(port),
        "PG_USER": "mlops",
        "PG_PASSWORD": "wheel-test-password",
        "PG_DATABASE": "airflow",
        "MLFLOW_PG_DATABASE": "mlflow_db",
    }
    server = subprocess.Popen(  # the script ends by exec'ing postgres: this is its pid
        ["bash", str(REPO_ROOT / "postgres" / "entrypoint.sh")],
        env=env,
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **user,  # type: ignore[call-overload]
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = psycopg2.connect(
                    host="127.0.0.1",
                    port=port,
                    user="mlops",
                    password="wheel-test-password",
                    dbname="mlflow_db",
                    connect_timeout=2,
                )
                break
            except psycopg2.OperationalError:
                assert server.poll() is None, server.communicate()[0]
                assert time.monotonic() < deadline, "the wheel's PostgreSQL never answered"
                time.sleep(0.5)
        with conn, conn.cursor() as cur:
            cur.execute("SHOW server_version")
            assert cur.fetchone()[0].startswith("16.")
        conn.close()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
