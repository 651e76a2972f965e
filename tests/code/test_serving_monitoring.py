"""The service shows what the monitor found: /monitoring, its report, and the monitoring_*
gauges on /metrics; every series a dashboard panel queries is in a scrape of the app, and the
scrape passes `promtool check metrics`."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_helpers import holder_serving
from sklearn.linear_model import LogisticRegression
from synthetic_model import fitted_pipeline
from test_monitoring_config import dashboard_metric_names

from mlplatform.monitoring.drift import reference_frame
from mlplatform.monitoring.feedback import Outcome, merge_outcomes, outcomes_frame
from mlplatform.monitoring.policy import Thresholds
from mlplatform.monitoring.summary import summarise
from mlplatform.prediction_ids import new_ids
from mlplatform.serving.app import create_app
from mlplatform.serving.schemas import example_patient
from mlplatform.settings import Settings
from mlplatform.synthetic import synthetic_features

SETTINGS = Settings(API_KEY="", MINIO_PORT=9)


@pytest.fixture(scope="module")
def run() -> dict:
    """A monitoring run as the DAG writes it: a shifted window of 200 predictions."""
    model = fitted_pipeline(LogisticRegression(max_iter=500))
    train = synthetic_features(400, seed=1)
    window = synthetic_features(200, seed=2).assign(age=lambda f: np.minimum(f["age"] + 25, 100))
    x = window.to_numpy(np.float64)
    ids = new_ids(len(window), b"test")
    window = window.assign(
        label=model.predict(window), probability=model.predict_proba(window)[:, 1]
    ).assign(model_version="7", timestamp=datetime.now(UTC), prediction_id=ids)
    end = datetime.now(UTC)
    observed = [Outcome(i, int(label)) for i, label in zip(ids, window["label"], strict=True)]
    summary, _ = summarise(
        window,
        reference_frame(model, train, folds=0),
        model_version="7",
        window_start=end - timedelta(hours=1),
        window_end=end,
        champion_f1=0.8,
        thresholds=Thresholds(min_rows=50, min_labelled=50, drift_share_threshold=0.05),
        outcomes=merge_outcomes(None, outcomes_frame(observed, end)).outcomes,
        html=False,
    )
    assert x.shape == (200, 13)
    return {
        "window": "w",
        "computed_at": end.isoformat(),
        "champion_version": "7",
        "status": summary.status,
        "degraded": summary.decision.degraded,
        "summaries": [summary.to_dict()],
        "prefix": "monitoring/w/",
    }


@pytest.fixture()
def client():
    pipeline = fitted_pipeline(LogisticRegression(max_iter=500))
    return TestClient(create_app(SETTINGS, holder_serving(pipeline, SETTINGS), background=False))


def test_no_run_yet_is_a_404_with_guidance(client):
    resp = client.get("/monitoring")
    assert resp.status_code == 404 and "monitor" in resp.json()["detail"]
    assert client.get("/monitoring/report").status_code == 404
    assert "monitoring_" not in client.get("/metrics").text


def test_the_latest_run_is_shown_and_its_gauges_scraped(client, run):
    client.app.state.monitoring.latest = run
    assert client.get("/monitoring").json()["summaries"][0]["model_version"] == "7"
    client.post("/predict", json=example_patient())
    client.post("/predict", json={**example_patient(), "age": 1})
    text = client.get("/metrics").text
    assert 'monitoring_degraded{model_version="7"} 1.0' in text  # the shifted age drifted
    assert "monitoring_drift_share{" in text and "monitoring_last_run_timestamp_seconds" in text
    assert 'monitoring_live_f1{model_version="7"} 1.0' in text  # outcomes equal the labels
    scraped = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    assert dashboard_metric_names() <= scraped
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
