"""The local stack's own behaviour: loopback only, idempotent start, clear errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mlplatform.errors import PlatformError
from mlplatform.localstack import LocalStack, check_prerequisites, stack_processes
from mlplatform.settings import Settings


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
    assert {
        stack.PG_PORT,
        stack.MINIO_PORT,
        stack.MLFLOW_PORT,
        stack.AIRFLOW_PORT,
        stack.FASTAPI_PORT,
    } <= {port for _, port in listeners}
    outside = [(a, p) for a, p in listeners if a not in ("127.0.0.1", "::1")]
    assert not outside, f"listening beyond loopback: {outside}"


def test_starting_twice_is_safe(stack: Settings) -> None:
    local = LocalStack(stack)
    pids_before = {name: pid for name, _, pid, _ in local.status()}
    local.up(timeout=60, quiet=True)
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
