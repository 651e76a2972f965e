"""The monitoring loop on the real stack: feedback through the API, the `monitor` DAG triggered
over REST, insufficient data, in-distribution traffic that raises no alarm, and shifted traffic
with its outcomes that is detected and starts `retrain` by itself. Prints its figures."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from test_pipelines import task_log

from mlplatform import registry
from mlplatform.airflow_client import AirflowClient
from mlplatform.commands.monitoring import SHIFTED_SOURCES, send_with_outcomes, wait_for_log_flush
from mlplatform.commands.serving import wait_for_version
from mlplatform.lake import Lake
from mlplatform.monitor import stored_outcomes
from mlplatform.settings import Settings
from mlplatform.spec import SPEC
from mlplatform.store import DataStore

FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="module")
def champion(stack: Settings) -> Any:
    """The trained champion (tests/e2e/test_pipelines.py ran first), served."""
    champion = registry.get_champion(stack)
    assert champion is not None and champion.tags.get("dataset_version"), "no trained champion"
    wait_for_version(stack, champion.version)
    return champion


def monitor(stack: Settings, window_hours: float) -> dict[str, Any]:
    client = AirflowClient(stack)
    run_id, state = client.trigger_and_wait("monitor", {"window_hours": window_hours}, timeout=900)
    if state != "success":  # say why: the failed task's own log
        tasks = client.task_states("monitor", run_id)
        failed = [task for task, s in tasks.items() if s == "failed"]
        logs = {task: task_log(stack, "monitor", run_id, task)[-3000:] for task in failed}
        raise AssertionError(f"monitor run {state}: {tasks}\n{logs}")
    latest = DataStore(Lake(stack)).latest_monitoring()
    assert latest is not None
    return latest


def champion_summary(run: dict[str, Any], champion: Any) -> dict[str, Any]:
    return next(s for s in run["summaries"] if s["model_version"] == str(champion.version))


def post_rows(stack: Settings, frame: Any) -> list[str]:
    rows = [
        {
            k: (None if v != v else int(v) if float(v).is_integer() else float(v))
            for k, v in r.items()
        }
        for r in frame.to_dict("records")
    ]
    ids = []
    for start in range(0, len(rows), stack.MAX_BATCH_ROWS):
        resp = httpx.post(
            f"{stack.fastapi_url}/predict/batch",
            json={"rows": rows[start : start + stack.MAX_BATCH_ROWS]},
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        ids += [p["prediction_id"] for p in resp.json()["predictions"]]
    return ids


def test_the_champions_training_run_logged_its_monitoring_reference(
    stack: Settings, champion
) -> None:  # type: ignore[no-untyped-def]
    """Monitoring reads it instead of refitting the champion on every fold (12 s for a forest)."""
    from mlplatform.monitoring.drift import PREDICTION_COLUMNS, REFERENCE_ARTIFACT

    store = DataStore(Lake(stack))
    train = store.load_split("train", store.read_version(champion.tags["dataset_version"]), SPEC)
    reference = registry.logged_frame(champion.tags[registry.TRAINING_RUN_TAG], REFERENCE_ARTIFACT)
    assert reference is not None
    assert list(reference.columns) == [*SPEC.feature_names, *PREDICTION_COLUMNS]
    assert len(reference) == len(train)
    assert reference["probability"].between(0, 1).all()


def test_feedback_is_stored_once_per_id_and_bad_feedback_is_4xx(stack: Settings, champion) -> None:
    url = f"{stack.fastapi_url}/feedback"
    (pid,) = post_rows(stack, _training_rows(stack, 1, seed=3))
    for _ in range(2):  # the same outcome twice: one outcome
        assert httpx.post(url, json={"prediction_id": pid, "label": 1}).status_code == 200
    later = {"prediction_id": pid, "label": 0, "observed_at": "2099-01-01T00:00:00Z"}
    assert httpx.post(url, json=later).status_code == 422  # observed in the future
    changed = {"prediction_id": pid, "label": 0}
    assert httpx.post(url, json=changed).status_code == 200  # a correction: the latest wins
    outcomes = stored_outcomes(DataStore(Lake(stack)))
    assert outcomes is not None
    mine = outcomes[outcomes["prediction_id"] == pid]
    assert len(mine) == 1 and int(mine["observed_label"].iloc[0]) == 0
    assert int(mine["revisions"].iloc[0]) == 1
    forged = httpx.post(url, json={"prediction_id": "p_" + "A" * 26, "label": 1})
    assert forged.status_code == 422 and "never issued" in forged.text


def test_too_little_traffic_is_insufficient_data_not_an_alarm(stack: Settings, champion) -> None:
    run = monitor(stack, window_hours=0.001)  # a few seconds: no prediction in it
    summary = champion_summary(run, champion)
    assert summary["status"] == "insufficient_data" and not run["degraded"]
    assert summary["rows"] < stack.MONITOR_MIN_ROWS  # the feedback test's one row, at most


def _training_rows(stack: Settings, n: int, seed: int) -> Any:
    store = DataStore(Lake(stack))
    champion = registry.get_champion(stack)
    assert champion is not None
    train = store.load_split("train", store.read_version(champion.tags["dataset_version"]), SPEC)
    return train[list(SPEC.feature_names)].sample(n, replace=True, random_state=seed)


def test_in_distribution_traffic_raises_no_alarm(stack: Settings, champion) -> None:
    started = time.time()
    post_rows(stack, _training_rows(stack, 400, seed=11))
    wait_for_log_flush(stack)
    hours = (time.time() - started + 30) / 3600
    run = monitor(stack, window_hours=hours)
    summary = champion_summary(run, champion)
    FIGURES["in-distribution drift share"] = summary["drift"]["drift_share"]
    assert summary["rows"] >= 400 and summary["status"] == "ok", summary["decision"]
    assert not run["degraded"]
    report = httpx.get(f"{stack.fastapi_url}/monitoring/report", timeout=30)
    assert report.status_code == 200 and "<html" in report.text.lower()


def test_shifted_traffic_is_detected_and_starts_retraining(stack: Settings, champion) -> None:
    client = AirflowClient(stack)
    seen = {r["dag_run_id"] for r in client.runs("retrain")}
    started = time.monotonic()
    began = time.time()
    sent = send_with_outcomes(stack, SHIFTED_SOURCES)
    wait_for_log_flush(stack)
    run = monitor(stack, window_hours=(time.time() - began + 30) / 3600)
    summary = champion_summary(run, champion)
    assert summary["rows"] >= sent and run["degraded"], summary["decision"]
    assert summary["performance"]["labelled_rows"] >= stack.MONITOR_MIN_LABELLED
    new = client.wait_for_new_run("retrain", seen, timeout=600)
    assert new["run_type"] == "asset_triggered"
    FIGURES["shifted rows sent"] = sent
    FIGURES["shifted drift share"] = summary["drift"]["drift_share"]
    FIGURES["seconds from shifted traffic to retrain start"] = round(time.monotonic() - started)
    assert client.wait("retrain", new["dag_run_id"], timeout=900) == "success"
    manifest = DataStore(Lake(stack)).read_manifest()
    assert manifest is not None and "feedback" in {d["source"] for d in manifest.deliveries}
    metrics = httpx.get(f"{stack.fastapi_url}/metrics", timeout=30).text
    deadline = time.monotonic() + stack.MONITOR_REFRESH_SECONDS + 30
    while f'monitoring_degraded{{model_version="{champion.version}"}} 1.0' not in metrics:
        assert time.monotonic() < deadline, "the service never showed the degraded gauge"
        time.sleep(5)
        metrics = httpx.get(f"{stack.fastapi_url}/metrics", timeout=30).text
    print("\nmonitoring figures:", FIGURES)
