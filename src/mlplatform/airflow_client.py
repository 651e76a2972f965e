"""Airflow's REST API, used exactly as the UI uses it: a token, then dag runs.

`make demo` and the end-to-end tests trigger DAGs through this client.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx

from mlplatform.errors import PlatformError
from mlplatform.settings import Settings, get_settings

FINISHED = {"success", "failed"}
TASK_DONE = {"success", "failed", "skipped", "upstream_failed", "removed"}


class DagRunFailed(PlatformError):
    """A DAG run that ended other than in success."""


class AirflowClient:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.base = self.settings.airflow_url
        self._http = httpx.Client(base_url=self.base, timeout=30)
        self._token: str | None = None

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            resp = self._http.post(
                "/auth/token",
                json={
                    "username": self.settings.AIRFLOW_ADMIN_USER,
                    "password": self.settings.AIRFLOW_ADMIN_PASSWORD,
                },
            )
            resp.raise_for_status()
            self._token = resp.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self._http.request(method, f"/api/v2{path}", headers=self._headers(), **kwargs)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        """Wait until the dag-processor has parsed `dag_id`; unpause it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                dag: dict[str, Any] = self.request("GET", f"/dags/{dag_id}")
                if dag.get("is_paused"):
                    dag = self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
                return dag
            except httpx.HTTPStatusError as err:
                if err.response.status_code != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(2)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        self.wait_for_dag(dag_id)
        run = self.request(
            "POST",
            f"/dags/{dag_id}/dagRuns",
            json={"logical_date": datetime.now(UTC).isoformat(), "conf": conf or {}},
        )
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait(self, dag_id: str, run_id: str, timeout: float = 600, poll: float = 2) -> str:
        deadline = time.monotonic() + timeout
        while (state := self.run_state(dag_id, run_id)) not in FINISHED:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} run {run_id} still {state} after {timeout:.0f} s")
            time.sleep(poll)
        return state

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        body = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in body["task_instances"]}

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        body = self.request("GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "-run_after"})
        return list(body["dag_runs"])

    def wait_for_new_run(
        self, dag_id: str, seen: set[str], timeout: float = 600, poll: float = 2
    ) -> dict[str, Any]:
        """The first run of `dag_id` not in `seen`, e.g. one an Asset update started."""
        deadline = time.monotonic() + timeout
        while not (new := [r for r in self.runs(dag_id) if r["dag_run_id"] not in seen]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no new run of {dag_id} started within {timeout:.0f} s")
            time.sleep(poll)
        return new[-1]

    def follow(self, dag_id: str, run_id: str, timeout: float = 1800, poll: float = 1) -> str:
        """Wait for a run, showing each task's state as it changes with its elapsed time (a
        live table on a terminal, plain lines in a log), as a user watching the UI would."""
        from mlplatform.progress import status_board

        deadline = time.monotonic() + timeout
        with status_board(f"{dag_id} run {run_id}") as board:
            while True:
                state = self.run_state(dag_id, run_id)
                tasks = self.task_states(dag_id, run_id)
                for task, task_state in tasks.items():
                    board.set(task, str(task_state), final=task_state in TASK_DONE)
                board.set("(run)", state, final=state in FINISHED)
                if state in FINISHED:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{dag_id} run {run_id} still {state} after {timeout:.0f} s")
                time.sleep(poll)
        print(f"{dag_id}: {state} ({', '.join(f'{t}={s}' for t, s in tasks.items())})")
        if state != "success":
            raise DagRunFailed(
                f"{dag_id} run {run_id} {state}: see its task logs in the Airflow UI {self.base}"
            )
        return run_id

    def run(self, dag_id: str, conf: dict[str, Any] | None = None, timeout: float = 1800) -> str:
        """Trigger, then follow: the run id, or DagRunFailed."""
        run_id = self.trigger(dag_id, conf)
        print(f"{dag_id}: triggered run {run_id}, waiting...", flush=True)
        return self.follow(dag_id, run_id, timeout)

    def trigger_and_wait(
        self, dag_id: str, conf: dict[str, Any] | None = None, timeout: float = 600
    ) -> tuple[str, str]:
        run_id = self.trigger(dag_id, conf)
        return run_id, self.wait(dag_id, run_id, timeout)
