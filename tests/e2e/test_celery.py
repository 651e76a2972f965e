"""The CeleryExecutor on a second real local stack: Debian's redis-server as the broker and two
`airflow celery worker` processes. `etl` and `train` run to success on it, and two runs
triggered together run at the same time on the two workers.

The stack is this module's own (temporary folder, free ports), started beside the session's
and stopped at the module's end. One slot per worker: two tasks running at once must then be
on two workers, so their hostnames (each worker's Celery node name) tell them apart.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from figures import record
from local_stacks import temporary_stack

from mlplatform.airflow_client import AirflowClient
from mlplatform.localstack import LocalStack, export_env, process_tree_pss_mb
from mlplatform.localstack.services import BROKER, worker_nodename
from mlplatform.settings import Settings

WORKERS = 2
TRIALS = 2  # the train DAG's n_trials: few, for the CI's wall time
CELERY = {
    "AIRFLOW_EXECUTOR": "CeleryExecutor",
    "AIRFLOW_WORKERS": str(WORKERS),
    "AIRFLOW_WORKER_CONCURRENCY": "1",
}
REPORT: list[str] = []


@pytest.fixture(scope="module")
def celery_stack() -> Iterator[Settings]:
    started = time.monotonic()
    with temporary_stack(CELERY, export=False, report=REPORT) as settings:
        record("Celery stack (2 workers)", start_s=time.monotonic() - started)
        print(REPORT[-1])
        yield settings


def task_instances(client: AirflowClient, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    body = client.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
    return list(body["task_instances"])


def interval(ti: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(ti["start_date"]), datetime.fromisoformat(ti["end_date"])


def overlap_seconds(a: dict[str, Any], b: dict[str, Any]) -> float:
    (a0, a1), (b0, b1) = interval(a), interval(b)
    return (min(a1, b1) - max(a0, b0)).total_seconds()


def test_status_shows_each_worker_and_the_broker_healthy(celery_stack: Settings) -> None:
    rows = {
        name: (state, pid, health) for name, state, pid, health in LocalStack(celery_stack).status()
    }
    workers = [f"airflow-worker-{i}" for i in range(1, WORKERS + 1)]
    for name in [*workers, BROKER]:
        assert rows[name][0] == "RUNNING" and rows[name][2] == "healthy", (name, rows[name])
    # The command users run, against this stack: one line per worker and the broker.
    env = {**os.environ, **export_env(celery_stack)}
    cli = Path(sys.executable).parent / "mlplatform"
    status = subprocess.run(
        [str(cli), "local", "status"], env=env, capture_output=True, text=True, timeout=120
    )
    assert status.returncode == 0, status.stdout + status.stderr
    lines = {line.split()[0]: line for line in status.stdout.splitlines() if line.strip()}
    for name in [*workers, BROKER]:
        assert "healthy" in lines[name].split(), lines[name]
    assert f"Celery: {WORKERS} workers x 1 slots" in status.stdout
    memory = {name: process_tree_pss_mb(rows[name][1]) for name in [workers[0], BROKER]}
    record("Celery processes at rest", worker_mb=memory[workers[0]], broker_mb=memory[BROKER])


def failure_logs(s: Settings, dag_id: str, run_id: str) -> str:
    """The end of every task log of the run that shows an error: the stack's folder is gone
    after the module, so a failure must carry its own explanation."""
    root = s.airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    found = []
    for path in sorted(root.glob("**/attempt=*.log")):
        text = path.read_text(errors="replace")
        if "Traceback" in text or "ERROR" in text:
            found.append(f"--- {path.relative_to(root)}\n{text[-3000:]}")
    return "\n".join(found) or f"no task log with an error under {root}"


def test_etl_and_train_succeed_and_two_runs_share_the_two_workers(celery_stack: Settings) -> None:
    client = AirflowClient(celery_stack)
    nodes = {worker_nodename(i) for i in range(1, WORKERS + 1)}

    started = time.monotonic()
    etl_run, state = client.trigger_and_wait("etl", timeout=600)
    etl_seconds = time.monotonic() - started
    assert state == "success", (
        client.task_states("etl", etl_run),
        failure_logs(celery_stack, "etl", etl_run),
    )
    # The new dataset version starts `retrain` (skipped: no champion yet); let it finish, so
    # the two runs below have the two workers to themselves.
    retrain = client.wait_for_new_run("retrain", set(), timeout=300)
    client.wait("retrain", retrain["dag_run_id"], timeout=300)

    # Two runs triggered together: the training and the lake smoke test.
    for dag_id in ("train", "platform_smoke"):
        client.wait_for_dag(dag_id)
    started = time.monotonic()
    train_run = client.trigger("train", {"n_trials": TRIALS})
    smoke_run = client.trigger("platform_smoke")
    assert client.wait("platform_smoke", smoke_run, timeout=600) == "success"
    assert client.wait("train", train_run, timeout=900) == "success", (
        client.task_states("train", train_run),
        failure_logs(celery_stack, "train", train_run),
    )
    train_seconds = time.monotonic() - started

    etl = task_instances(client, "etl", etl_run)
    train = task_instances(client, "train", train_run)
    smoke = task_instances(client, "platform_smoke", smoke_run)
    assert all(ti["state"] in ("success", "skipped") for ti in etl), etl
    assert all(ti["state"] == "success" for ti in train + smoke), train + smoke
    ran = [ti for ti in etl + train + smoke if ti["state"] == "success"]
    # Every task ran on a Celery worker of this stack, and both workers took tasks.
    assert {ti["hostname"] for ti in ran} == nodes, sorted({ti["hostname"] for ti in ran})
    print()
    for ti in ran:
        print(f"{ti['dag_id']}.{ti['task_id']:24s} {ti['duration']:6.1f} s on {ti['hostname']}")

    # At the same time on two workers: a smoke task whose interval overlaps a training task's.
    pairs = [
        (overlap_seconds(a, b), a, b)
        for a, b in product(train, smoke)
        if a["hostname"] != b["hostname"]
    ]
    overlap, a, b = max(pairs, key=lambda p: p[0])
    assert overlap > 0, (
        f"no two tasks ran at once: {[(p[1]['task_id'], p[2]['task_id'], p[0]) for p in pairs]}"
    )
    record(
        "Celery: etl, then train with a smoke run",
        etl_s=etl_seconds,
        train_and_smoke_s=train_seconds,
        overlap_s=overlap,
        overlapping=f"train.{a['task_id']} on {a['hostname']} + smoke on {b['hostname']}",
    )
