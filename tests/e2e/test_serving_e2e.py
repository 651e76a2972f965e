"""The prediction service on the real stack: champion pickup, hot swap under load, batch DAG,
fuzzing over the OpenAPI spec, a real browser, and degraded readiness while MLflow is down."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import numpy as np
import pytest
import schemathesis
from browser import browser_page, screenshot
from figures import record
from load import Load
from payloads import rows_as_json
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from synthetic_model import register_synthetic_model

from mlplatform import registry
from mlplatform.commands.serving import wait_for_version
from mlplatform.inference.predictors import LINEAR_TOLERANCE
from mlplatform.serving.schemas import example_patient
from mlplatform.synthetic import synthetic_features


@pytest.fixture(scope="module")
def versions(stack):
    """Two registered versions (A = champion at start, B = the next champion); the former
    champion is restored afterwards."""
    before = registry.get_champion(stack)
    a = register_synthetic_model(LogisticRegression(max_iter=500), stack, seed=0)
    b = register_synthetic_model(
        RandomForestClassifier(n_estimators=40, max_depth=4, random_state=0),
        stack,
        seed=1,
        promote=False,
    )
    yield a, b
    if before is not None:
        registry.promote(before.version, stack)


def test_predict_answers_with_the_champion_version_and_its_predictions(stack, versions):
    a, _ = versions
    registry.promote(a.version, stack)
    info = wait_for_version(stack, str(a.version))
    pipeline = registry.load_pipeline(
        registry.model_uri(stack.REGISTERED_MODEL_NAME, version=a.version)
    )
    frame = synthetic_features(50, seed=21, missing_rate=0.03)
    resp = httpx.post(f"{stack.fastapi_url}/predict/batch", json={"rows": rows_as_json(frame)})
    assert resp.status_code == 200, resp.text
    got = resp.json()["predictions"]
    assert {p["model_version"] for p in got} == {str(a.version)}
    np.testing.assert_array_equal([p["label"] for p in got], pipeline.predict(frame))
    one = httpx.post(f"{stack.fastapi_url}/predict", json=example_patient()).json()
    assert one["model_version"] == str(a.version) and info["backend"] == "onnx"


def test_hot_swap_under_load_has_zero_failures_within_the_poll_interval(stack, versions):
    a, b = versions
    registry.promote(a.version, stack)
    wait_for_version(stack, str(a.version))
    with Load(stack.fastapi_url, concurrency=4) as load:
        time.sleep(2)
        promoted_at = time.monotonic()
        registry.promote(b.version, stack)
        info = wait_for_version(stack, str(b.version))
        time.sleep(2)
    seen = load.answers
    assert not load.failures, load.failures[:5]
    first_b = min(x.at for x in seen if x.version == str(b.version))
    switch = first_b - promoted_at
    record(
        "hot swap under load (c=4)",
        requests=len(seen),
        failed=len(load.failures),
        seconds_to_new_version=round(switch, 2),
        load_seconds=info["load_seconds"],
    )
    # The watcher notices within one poll, then loads the new version off the request path.
    assert switch <= stack.MODEL_POLL_SECONDS + info["load_seconds"] + 1.0, (switch, info)
    assert {x.version for x in seen} == {str(a.version), str(b.version)}
    assert len(seen) > 100


def test_batch_dag_matches_in_process_predictions_row_for_row(stack, versions):
    from mlplatform.airflow_client import AirflowClient
    from mlplatform.lake import Lake
    from mlplatform.store import DataStore

    store = DataStore(Lake(stack))
    champion = registry.get_champion(stack)
    pipeline = registry.load_pipeline(
        registry.model_uri(stack.REGISTERED_MODEL_NAME, version=champion.version)
    )
    frame = synthetic_features(500, seed=33, missing_rate=0.02).astype(object)
    frame.loc[[10, 400], "cp"] = 7
    key = store.drop_batch_file(
        f"e2e-{uuid.uuid4().hex[:8]}.csv", frame.to_csv(index=False).encode()
    )
    run_id, state = AirflowClient(stack).trigger_and_wait("batch_predict", timeout=600)
    assert state == "success", run_id
    prefix = store.latest_batch_output(key)
    assert run_id in prefix, "each run writes its own output"
    out = store.read_batch_output(prefix)
    rejected = store.read_batch_output(prefix, kind="rejected")
    good = frame.drop(index=[10, 400]).astype(float)
    assert list(rejected["row_id"]) == ["10", "400"]
    np.testing.assert_array_equal(out["row_id"], good.index.astype(str))
    np.testing.assert_array_equal(out["label"], pipeline.predict(good))
    # A linear champion's batch probabilities are its ONNX twin's (`batch_predictor`).
    want = pipeline.predict_proba(good)[:, 1]
    np.testing.assert_allclose(out["probability"], want, rtol=0, atol=LINEAR_TOLERANCE)
    assert set(out["model_version"]) == {str(champion.version)}


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_fuzzing_the_openapi_spec_never_gives_a_5xx(stack, versions, mode):
    """Valid and schema-violating requests to every operation: never a 5xx."""
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode

    registry.promote(versions[0].version, stack)
    wait_for_version(stack, str(versions[0].version))
    schema = schemathesis.openapi.from_url(f"{stack.fastapi_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /predict", "POST /predict/batch"}
    if mode == "negative":  # operations without inputs have no invalid request to make
        operations = [op for op in operations if op.method.upper() == "POST"]
    for operation in operations:

        @settings(
            max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
        def check(case: Any) -> None:
            case.call_and_validate(checks=[not_a_server_error])

        check()


def test_web_page_predicts_in_a_real_browser(stack, versions):
    champion = registry.get_champion(stack)
    wait_for_version(stack, str(champion.version))
    with browser_page("prediction-page") as page:
        predicts: list[str] = []  # every request the page sends to /predict
        page.on(
            "request",
            lambda r: predicts.append(r.method) if r.url.endswith("/predict") else None,
        )
        page.goto(f"{stack.fastapi_url}/")
        page.wait_for_selector("#model:has-text('version')")
        page.fill("#age", "71")
        page.select_option("#cp", "4")
        page.click("#submit")
        page.wait_for_selector("#version")
        assert page.inner_text("#version") == str(champion.version)
        assert page.inner_text("#label") in ("disease", "no disease")
        assert predicts == ["POST"], "a valid form sends exactly one request"
        screenshot(page, "prediction-page")
        # Out of range: the form's own hints (min/max from SPEC) stop it before any request.
        page.fill("#age", "250")
        page.click("#submit")
        assert page.eval_on_selector("#age", "e => e.validity.rangeOverflow")
        page.wait_for_timeout(1500)  # room for a request that should not come
        assert predicts == ["POST"], f"the form sent an out-of-range request: {predicts}"
        assert page.inner_text("#version") == str(champion.version)


def test_registry_down_keeps_serving_reports_degraded_and_recovers(stack, versions):
    from mlplatform.localstack import LocalStack

    supervisor = LocalStack(stack).rpc()
    supervisor.stopProcess("mlflow")
    try:
        deadline = time.monotonic() + stack.MODEL_POLL_SECONDS * 4 + 30
        while (ready := httpx.get(f"{stack.fastapi_url}/ready", timeout=5).json())[
            "status"
        ] != "degraded":
            assert time.monotonic() < deadline, ready
            time.sleep(1)
        assert "registry" in ready
        assert httpx.post(f"{stack.fastapi_url}/predict", json=example_patient()).status_code == 200
    finally:
        supervisor.startProcess("mlflow")
    deadline = time.monotonic() + 180
    while httpx.get(f"{stack.fastapi_url}/ready", timeout=5).json()["status"] != "ready":
        assert time.monotonic() < deadline, "the service did not recover after MLflow came back"
        time.sleep(2)
