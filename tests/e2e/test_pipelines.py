"""The data and training pipelines on the real stack, DAGs triggered over Airflow's REST API
as a user does from the UI: seed -> ETL -> training -> champion; a new delivery -> ETL ->
retraining by itself (Asset) -> decision; a bad delivery changes nothing; the notebook runs.

The tests run in file order and build on each other (one stack per session)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import pytest

from mlplatform import registry
from mlplatform.airflow_client import AirflowClient
from mlplatform.ingest import deliver, read_deliveries, withdraw
from mlplatform.lake import Lake
from mlplatform.settings import REPO_ROOT, Settings
from mlplatform.spec import SPEC
from mlplatform.store import DatasetMetadata, DataStore

E2E_TRIALS = 3  # keeps the e2e wall time small; the DAG param overrides N_TRIALS
E2E_SEARCH_WORKERS = 2  # the DAG param overrides SEARCH_WORKERS
NOTEBOOK = REPO_ROOT / "notebook_example" / "heart_disease_eda_and_search.ipynb"


def run_dag(
    stack: Settings, dag_id: str, conf: dict[str, Any] | None = None
) -> tuple[str, dict[str, str]]:
    client = AirflowClient(stack)
    run_id, state = client.trigger_and_wait(dag_id, conf, timeout=600)
    tasks = client.task_states(dag_id, run_id)
    assert state in ("success", "failed"), state
    return state, tasks


def task_log(stack: Settings, dag_id: str, run_id: str, task_id: str) -> str:
    body = AirflowClient(stack).request(
        "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/1"
    )
    return "\n".join(
        str(e.get("event", "")) + str(e.get("error_detail", "")) for e in body["content"]
    )


def mlflow_runs(stack: Settings, filter_string: str) -> list[Any]:
    registry.configure(stack)
    experiment = mlflow.get_experiment_by_name(stack.MLFLOW_EXPERIMENT_NAME)
    assert experiment is not None
    return list(
        mlflow.search_runs(
            [experiment.experiment_id], filter_string=filter_string, output_format="list"
        )
    )


def store(stack: Settings) -> DataStore:
    return DataStore(Lake(stack))


def manifest_of(stack: Settings) -> DatasetMetadata:
    manifest = store(stack).read_manifest()
    assert manifest is not None
    return manifest


def champion_uri(stack: Settings) -> str:
    return registry.model_uri(stack.REGISTERED_MODEL_NAME, alias=registry.CHAMPION)


def current_test_split(stack: Settings):  # type: ignore[no-untyped-def]
    return store(stack).load_split("test", manifest_of(stack), SPEC)


def wait_for_idle(client: AirflowClient, dag_id: str, timeout: float = 600) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        runs = client.runs(dag_id)
        if all(r["state"] in ("success", "failed") for r in runs):
            return runs
        assert time.monotonic() < deadline, f"{dag_id} still running after {timeout:.0f} s: {runs}"
        time.sleep(2)


def test_seed_etl_training_gives_a_champion_with_metrics(stack: Settings) -> None:
    assert any(d.source == "cleveland" for d in read_deliveries(Lake(stack))), (
        "the landing zone was not seeded"
    )
    champion_before = registry.get_champion(stack)

    started = time.monotonic()
    state, tasks = run_dag(stack, "etl")
    etl_seconds = time.monotonic() - started
    assert state == "success", tasks
    manifest = manifest_of(stack)
    version = manifest.dataset_version
    etl_run = mlflow_runs(
        stack, f"tags.dataset_version = '{version}' and tags.`mlplatform.kind` = 'etl'"
    )
    assert len(etl_run) == 1
    logged = {d.dataset.name: d.dataset for d in etl_run[0].inputs.dataset_inputs}
    train_input = logged[f"uci_heart_disease-{version}-train"]
    assert train_input.source and "splits/" in train_input.source and train_input.digest
    assert etl_run[0].data.metrics["rows_clean"] == manifest.counts["rows_clean"]
    assert "missing_ca" in etl_run[0].data.metrics

    started = time.monotonic()
    # K = 2 mapped search tasks sharing one Optuna study in PostgreSQL (the parallel path).
    conf = {"n_trials": E2E_TRIALS, "search_workers": E2E_SEARCH_WORKERS}
    state, tasks = run_dag(stack, "train", conf)
    train_seconds = time.monotonic() - started
    assert state == "success", tasks
    print(
        f"\nwall time: etl {etl_seconds:.0f} s, training with {E2E_TRIALS} trials {train_seconds:.0f} s"
    )

    parent = mlflow_runs(
        stack, f"tags.dataset_version = '{version}' and tags.`mlplatform.kind` = 'training'"
    )
    assert len(parent) >= 1
    run = parent[0]
    trials = mlflow_runs(stack, f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert len(trials) == E2E_TRIALS
    metrics = run.data.metrics
    assert {"test_f1", "test_roc_auc", "test_ece", "threshold"} <= set(metrics)
    for name in ("f1", "roc_auc", "accuracy", "brier"):  # every test metric has its interval
        assert metrics[f"test_{name}_ci_low"] <= metrics[f"test_{name}"]
        assert metrics[f"test_{name}"] <= metrics[f"test_{name}_ci_high"]
    client = registry.configure(stack)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts >= {
        f"plots/{n}.png"
        for n in ("roc_curve", "confusion_matrix", "feature_importance", "reliability")
    }
    card = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/model_card.md")
    assert version in card and "95% interval" in card and "By hospital" in card
    assert_the_search_ran_on_mapped_workers(stack, run)

    champion = registry.get_champion(stack)
    assert champion is not None
    if champion_before is None:  # the first model becomes the champion
        assert champion.tags["training_run_id"] == run.info.run_id
        assert champion.tags["dataset_version"] == version
        assert float(champion.tags["test_f1"]) == pytest.approx(
            run.data.metrics["test_f1"], abs=1e-4
        )
        assert champion.tags["git_commit"]
        assert float(champion.tags["threshold"]) == pytest.approx(metrics["threshold"], abs=1e-5)
        assert champion.tags["calibration"] in ("none", "sigmoid", "isotonic")
        model = registry.load_pipeline(champion_uri(stack))
        test = current_test_split(stack)
        assert model.predict_proba(test.drop(columns="target"))[:, 1].shape == (len(test),)
    else:
        assert champion.version == champion_before.version


def assert_the_search_ran_on_mapped_workers(stack: Settings, run: Any) -> None:
    """K mapped `search` tasks shared one study: each ran trials, all under one parent run,
    and the best was refit once (one model logged to the parent)."""
    client = AirflowClient(stack)
    run_id = client.runs("train")[0]["dag_run_id"]
    mapped = client.request("GET", f"/dags/train/dagRuns/{run_id}/taskInstances/search/listMapped")[
        "task_instances"
    ]
    assert sorted(ti["map_index"] for ti in mapped) == list(range(E2E_SEARCH_WORKERS))
    assert {ti["state"] for ti in mapped} == {"success"}
    params, metrics = run.data.params, run.data.metrics
    assert params["search_workers"] == str(E2E_SEARCH_WORKERS)
    assert params["optuna_study"].endswith(run_id)
    assert metrics["trials_completed"] == E2E_TRIALS
    assert metrics["workers_with_trials"] == E2E_SEARCH_WORKERS
    assert params["best_family"] in SPEC.search_space
    history = registry.configure(stack).get_metric_history(run.info.run_id, "threshold")
    assert len(history) == 1  # the refit ran once


def test_the_service_serves_the_trained_champion(stack: Settings) -> None:
    """The glue of the loop: the champion the training DAG promoted answers /predict."""
    import httpx
    from payloads import rows_as_json

    from mlplatform.commands.serving import wait_for_version
    from mlplatform.serving.schemas import example_patient

    champion = registry.get_champion(stack)
    assert champion is not None and champion.tags.get("trained_by")
    info = wait_for_version(stack, champion.version)
    assert info["dataset_version"] == champion.tags["dataset_version"]
    answer = httpx.post(f"{stack.fastapi_url}/predict", json=example_patient(), timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == str(champion.version)

    test_rows = current_test_split(stack).head(20)
    features = test_rows.drop(columns=["target"])
    batch = httpx.post(
        f"{stack.fastapi_url}/predict/batch", json={"rows": rows_as_json(features)}, timeout=30
    )
    assert batch.status_code == 200, batch.text
    served = [p["label"] for p in batch.json()["predictions"]]
    pipeline = registry.load_pipeline(champion_uri(stack))
    assert served == pipeline.predict(features).tolist()


def test_api_labels_agree_with_mlflow_pyfunc_on_2000_realistic_rows(
    stack: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The threshold travels inside the model: /predict/batch (ONNX or sklearn) gives the labels
    of MLflow's own pyfunc load of the champion, on resampled real rows and synthetic rows."""
    import httpx
    import numpy as np
    import pandas as pd
    from payloads import rows_as_json

    from mlplatform.commands.serving import wait_for_version
    from mlplatform.features import too_many_missing
    from mlplatform.synthetic import synthetic_features

    champion = registry.get_champion(stack)
    assert champion is not None
    info = wait_for_version(stack, champion.version)
    real = pd.concat(store(stack).load_splits(manifest_of(stack), SPEC).values())
    real = real[list(SPEC.feature_names)].astype(np.float64)
    resampled = real.sample(1000, replace=True, random_state=11)
    synthetic = synthetic_features(1500, seed=11, missing_rate=0.05)
    synthetic = synthetic[~too_many_missing(synthetic)].head(1000)
    rows = pd.concat([resampled, synthetic], ignore_index=True)
    assert len(rows) == 2000
    served: list[int] = []
    for start in range(0, len(rows), stack.MAX_BATCH_ROWS):
        chunk = rows.iloc[start : start + stack.MAX_BATCH_ROWS]
        answer = httpx.post(
            f"{stack.fastapi_url}/predict/batch", json={"rows": rows_as_json(chunk)}, timeout=120
        )
        assert answer.status_code == 200, answer.text
        served += [p["label"] for p in answer.json()["predictions"]]
    # Only this test process may deserialise through MLflow's loader; the platform never does.
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    pyfunc = mlflow.pyfunc.load_model(f"models:/{stack.REGISTERED_MODEL_NAME}@champion")
    expected = np.asarray(pyfunc.predict(rows)).astype(int).tolist()
    flips = sum(a != b for a, b in zip(served, expected, strict=True))
    assert flips == 0, f"{flips} of 2000 labels differ (backend {info.get('backend')})"


def test_new_delivery_retrains_by_itself_and_the_champion_follows_the_decision(
    stack: Settings,
) -> None:
    client = AirflowClient(stack)
    client.wait_for_dag("retrain")
    seen = {r["dag_run_id"] for r in wait_for_idle(client, "retrain")}
    old_champion = registry.get_champion(stack)
    assert old_champion is not None

    _, new = deliver("hungarian", stack)
    assert new, "hungarian was already delivered: run the e2e tests on a fresh stack"
    state, tasks = run_dag(stack, "etl")
    assert state == "success" and tasks["mark_dataset_updated"] == "success", tasks
    manifest = manifest_of(stack)
    assert {d["source"] for d in manifest.deliveries} == {"cleveland", "hungarian"}
    version = manifest.dataset_version
    quarantine = Lake(stack).read_parquet(manifest.keys["quarantine"])
    assert (
        len(quarantine) == manifest.counts["rows_quarantined"]
        and quarantine["reason"].notna().all()
    )

    new_run = client.wait_for_new_run("retrain", seen, timeout=600)
    assert new_run["run_type"] == "asset_triggered"
    assert client.wait("retrain", new_run["dag_run_id"], timeout=600) == "success"

    decided = mlflow_runs(
        stack, f"tags.dataset_version = '{version}' and tags.`mlplatform.kind` = 'retraining'"
    )
    assert len(decided) == 1
    run = decided[0]
    decision = run.data.tags["decision"]
    metrics = run.data.metrics
    assert {"champion_test_f1", "challenger_test_f1", "gate_improvement_low"} <= set(metrics)
    gate = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/decision.json")["gate"]
    assert gate["n_resamples"] >= 2000 and gate["rule"] and gate["mcnemar"]
    assert {s["source"] for s in gate["sources"]} == {"cleveland", "hungarian"}
    challenger = registry.get_alias(registry.CHALLENGER, stack)
    assert challenger is not None and challenger.tags["training_run_id"] == run.info.run_id
    champion = registry.get_champion(stack)
    assert champion is not None
    assert metrics["gate_improvement"] == pytest.approx(
        metrics["challenger_test_f1"] - metrics["champion_test_f1"], abs=1e-9
    )
    if decision == "promote":
        assert metrics["gate_improvement_low"] > 0
        assert not any(s["vetoes"] for s in gate["sources"])
        assert champion.version == challenger.version
        previous = registry.get_alias(registry.PREVIOUS_CHAMPION, stack)
        assert previous is not None and previous.version == old_champion.version
    else:
        assert decision == "keep"
        assert metrics["gate_improvement_low"] <= 0 or any(s["vetoes"] for s in gate["sources"])
        assert champion.version == old_champion.version


def test_bad_delivery_fails_loudly_and_changes_nothing(stack: Settings, tmp_path: Path) -> None:
    manifest_before = store(stack).read_manifest()
    champion_before = registry.get_champion(stack)
    bad = tmp_path / "processed.bad.data"
    bad.write_text("63,1,1,145,233,1,2,150,0,2.3,3,0,6\n" * 5)  # 13 columns
    deliver("bad_hospital", stack, bad)
    try:
        client = AirflowClient(stack)
        run_id, state = client.trigger_and_wait("etl", timeout=600)
        tasks = client.task_states("etl", run_id)
        assert state == "failed" and tasks["validate"] == "failed", tasks
        assert "build_version" not in tasks or tasks["build_version"] != "success"
        assert "has 13 columns per row, expected 14" in task_log(stack, "etl", run_id, "validate")
        assert store(stack).read_manifest() == manifest_before
        champion = registry.get_champion(stack)
        assert champion is not None and champion_before is not None
        assert champion.version == champion_before.version
    finally:
        withdraw("bad_hospital", stack)
    # With the bad file withdrawn, a re-run is a no-op: same version, no Asset event.
    state, tasks = run_dag(stack, "etl")
    assert state == "success" and tasks["mark_dataset_updated"] == "skipped", tasks
    assert manifest_before is not None
    manifest = manifest_of(stack)
    assert manifest.dataset_version == manifest_before.dataset_version
    assert store(stack).read_version(manifest.dataset_version).counts == manifest_before.counts


def test_a_failing_refit_leaves_the_registry_unchanged(stack: Settings) -> None:
    from mlplatform.training import SearchResult, refit

    client = registry.configure(stack)
    versions = lambda: (  # noqa: E731
        {
            mv.version
            for mv in client.search_model_versions(f"name = '{stack.REGISTERED_MODEL_NAME}'")
        },
        client.get_registered_model(stack.REGISTERED_MODEL_NAME).aliases,
    )
    before = versions()
    manifest = manifest_of(stack)
    with mlflow.start_run(run_name="e2e failing refit") as parent:
        pass
    broken = SearchResult(  # a configuration sklearn refuses, found only when fitting
        run_id=parent.info.run_id,
        dataset_version=manifest.dataset_version,
        family="svm",
        params={"C": -1.0, "gamma": 0.1},
        cv={},
    )
    with pytest.raises(ValueError, match="C"):
        refit(broken, store(stack), stack)
    assert versions() == before


def test_lineage_command_prints_the_champions_origin(
    stack: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlplatform.cli import main

    assert main(["lineage"]) == 0
    out = capsys.readouterr().out
    champion = registry.get_champion(stack)
    assert champion is not None
    assert f"version {champion.version}" in out
    assert champion.tags["dataset_version"] in out and champion.tags["git_commit"] in out


def test_notebook_executes(stack: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("NOTEBOOK_N_TRIALS", "2")  # the kernel inherits the environment
    monkeypatch.setenv("NOTEBOOK_CV_FOLDS", "3")
    NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert not errors
