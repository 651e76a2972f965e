"""The service's HTTP behaviour on an in-process app (TestClient), with a model but no registry."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_helpers import holder_serving
from sklearn.linear_model import LogisticRegression
from synthetic_model import fitted_pipeline

from mlplatform.inference.contract import FEATURES
from mlplatform.serving.app import create_app
from mlplatform.serving.schemas import example_patient
from mlplatform.serving.watcher import ModelHolder
from mlplatform.settings import Settings
from mlplatform.spec import SPEC
from mlplatform.synthetic import synthetic_features

SETTINGS = Settings(MAX_BATCH_ROWS=50, API_KEY="")


@pytest.fixture(scope="module")
def pipeline():
    return fitted_pipeline(LogisticRegression(max_iter=500))


@pytest.fixture()
def client(pipeline):
    return TestClient(create_app(SETTINGS, holder_serving(pipeline, SETTINGS), background=False))


def test_predict_answers_like_the_pipeline_with_the_model_version(client, pipeline):
    rows = synthetic_features(20, seed=5)
    for _, row in rows.iterrows():
        body = {k: (int(v) if float(v).is_integer() else float(v)) for k, v in row.items()}
        resp = client.post("/predict", json=body)
        assert resp.status_code == 200, resp.text
        got = resp.json()
        frame = pd.DataFrame([row])
        assert got["label"] == int(pipeline.predict(frame)[0])
        assert got["probability"] == pytest.approx(pipeline.predict_proba(frame)[0, 1], abs=1e-5)
        assert got["model_version"] == "7"


def test_null_means_unknown_and_is_imputed(client):
    resp = client.post("/predict", json={**example_patient(), "ca": None, "thal": None})
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"age": 500}, "age"),
        ({"age": "63"}, "age"),
        ({"age": 63.5}, "age"),
        ({"cp": 9}, "cp"),
        ({"chol": "high"}, "chol"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_bad_values_are_422_naming_the_field(client, change, field):
    resp = client.post("/predict", json={**example_patient(), **change})
    assert resp.status_code == 422
    assert [e["loc"][-1] for e in resp.json()["detail"]] == [field]


def test_missing_field_nan_inf_and_invalid_json_are_422(client):
    missing = {k: v for k, v in example_patient().items() if k != "thal"}
    assert client.post("/predict", json=missing).status_code == 422
    for bad in ("NaN", "Infinity", "-Infinity", "1e999"):
        body = json.dumps(example_patient()).replace('"oldpeak": 2.5', f'"oldpeak": {bad}')
        assert bad in body
        resp = client.post("/predict", content=body, headers={"content-type": "application/json"})
        assert resp.status_code == 422, (bad, resp.text)
    resp = client.post(
        "/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422


def test_batch_names_row_and_field_and_refuses_oversize(client):
    rows = [example_patient() for _ in range(3)]
    rows[2] = {**rows[2], "thalach": 10}
    resp = client.post("/predict/batch", json={"rows": rows})
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "rows", 2, "thalach"]
    ok = client.post("/predict/batch", json={"rows": rows[:2]})
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 2
    over = client.post("/predict/batch", json={"rows": [example_patient()] * 51})
    assert over.status_code == 422
    assert "50" in over.json()["detail"][0]["msg"]


def test_no_champion_is_503_with_guidance_and_never_a_fallback():
    client = TestClient(create_app(SETTINGS, ModelHolder(SETTINGS), background=False))
    assert client.get("/health").status_code == 200
    for resp in (client.post("/predict", json=example_patient()), client.get("/ready")):
        assert resp.status_code == 503
        assert "train" in resp.text and "champion" in resp.text


def test_degraded_readiness_keeps_serving(client):
    client.app.state.holder.registry_error = "ConnectionError: registry down"
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert "registry down" in ready.json()["registry"]
    assert client.post("/predict", json=example_patient()).status_code == 200
    client.app.state.holder.registry_error = None
    assert client.get("/ready").json()["status"] == "ready"


def test_api_key_is_required_when_configured(pipeline):
    s = Settings(API_KEY="s3cret")
    client = TestClient(create_app(s, holder_serving(pipeline, s), background=False))
    assert client.post("/predict", json=example_patient()).status_code == 401
    bad = client.post("/predict", json=example_patient(), headers={"X-API-Key": "nope"})
    assert bad.status_code == 401
    good = client.post("/predict", json=example_patient(), headers={"X-API-Key": "s3cret"})
    assert good.status_code == 200
    assert client.get("/health").status_code == 200


def test_metrics_report_requests_predictions_and_model_version(client):
    client.post("/predict", json=example_patient())
    client.post("/predict", json={**example_patient(), "age": 1})
    text = client.get("/metrics").text
    assert 'http_requests_total{handler="/predict",method="POST",status="200"} 1.0' in text
    assert 'http_requests_total{handler="/predict",method="POST",status="422"} 1.0' in text
    assert 'http_request_duration_seconds_bucket{handler="/predict"' in text
    assert "predictions_total{label=" in text
    assert (
        'model_version_info{backend="onnx",name="heart_disease_classifier",version="7"} 1.0' in text
    )


def test_model_info_and_page(client):
    info = client.get("/model").json()
    assert (
        info["version"] == "7"
        and info["backend"] == "onnx"
        and "parity passed" in info["backend_reason"]
    )
    page = client.get("/").text
    for feature in SPEC.numeric:
        assert f'id="{feature.name}"' in page and f'max="{feature.maximum:g}"' in page
    for feature in SPEC.categorical:
        assert all(f'<option value="{code}"' in page for code in feature.codes)
    assert len(FEATURES) == 13


def test_openapi_documents_ranges_codes_and_example(client):
    schema = client.get("/openapi.json").json()["components"]["schemas"]["Patient"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(FEATURES)
    assert schema["examples"] == [example_patient()]
    age = next(s for s in schema["properties"]["age"]["anyOf"] if s["type"] != "null")
    assert (age["minimum"], age["maximum"]) == (18, 100)
    cp = next(s for s in schema["properties"]["cp"]["anyOf"] if s["type"] != "null")
    assert cp["enum"] == [1, 2, 3, 4]
    assert np.isfinite(list(example_patient().values())).all()


def _fastapi_only(app):
    """The same app without its lean path: every request goes through FastAPI's routes."""
    app.hot = None
    return app


def _cell() -> st.SearchStrategy:
    return st.one_of(
        st.none(),
        st.integers(-5, 700),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
        st.booleans(),
        st.sampled_from(["63", "", [], {}, 1e400]),
    )


@st.composite
def _bodies(draw) -> tuple[str, bytes, str]:
    """A body for /predict or /predict/batch: mostly valid rows with a few changes, as JSON
    (or as near-JSON text), and a content type."""

    def row() -> dict:
        r = draw(st.sampled_from(ROWS))
        for key in draw(st.lists(st.sampled_from([*FEATURES, "extra"]), max_size=2)):
            if draw(st.booleans()):
                r = {**r, key: draw(_cell())}
            else:
                r = {k: v for k, v in r.items() if k != key}
        return r

    batch = draw(st.booleans())
    value = {"rows": draw(st.lists(st.builds(row), max_size=4))} if batch else row()
    text = json.dumps(value)
    text = draw(st.sampled_from([text, text, text[:-1], text.replace("1", "NaN", 1), " " + text]))
    kind = draw(st.sampled_from(["application/json"] * 4 + ["application/JSON; charset=utf-8",
                                                              "text/plain", ""]))  # fmt: skip
    return ("/predict/batch" if batch else "/predict"), text.encode(), kind


ROWS = [
    {k: (int(v) if float(v).is_integer() else float(v)) for k, v in r.items()}
    for r in synthetic_features(30, seed=4, missing_rate=0.1).to_dict("records")
]


@pytest.fixture(scope="module")
def lean_and_plain(pipeline):
    holder = holder_serving(pipeline, SETTINGS)
    return (
        TestClient(create_app(SETTINGS, holder, background=False)),
        TestClient(_fastapi_only(create_app(SETTINGS, holder, background=False))),
    )


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=_bodies())
def test_the_lean_path_answers_exactly_as_fastapis_routes(lean_and_plain, case):
    """Same status, same error body, same prediction (ids are random) with or without the
    lean path, for valid and broken bodies alike."""
    path, body, kind = case
    lean, plain = lean_and_plain
    headers = {"content-type": kind} if kind else {}
    got, want = (c.post(path, content=body, headers=headers) for c in (lean, plain))
    assert got.status_code == want.status_code, (body, got.text, want.text)
    assert got.headers["content-type"] == want.headers["content-type"]
    got_json, want_json = got.json(), want.json()
    if got.status_code == 200:
        for answer in (got_json, want_json):
            for p in answer.get("predictions", [answer]):
                assert p.pop("prediction_id").startswith("p_")
    assert got_json == want_json


def test_the_lean_path_records_the_metrics_fastapis_routes_record(pipeline):
    """The same requests (answered lean, refused by the guard, invalid, of another content
    type, without a length) give the same request counters with or without the lean path."""
    s = Settings(API_KEY="s3cret", MAX_BODY_BYTES=4096)
    key = {"X-API-Key": "s3cret"}
    body = json.dumps(example_patient()).encode()

    def counters(app) -> list[str]:
        client = TestClient(app)
        client.post("/predict", content=body, headers={**key, "content-type": "application/json"})
        client.post("/predict/batch", json={"rows": [example_patient()] * 3}, headers=key)
        client.post("/predict", json={**example_patient(), "age": 1}, headers=key)
        client.post("/predict", content=body, headers={**key, "content-type": "text/plain"})
        client.post("/predict", content=body)  # no key
        client.post("/predict", content=b"x" * 5000, headers=key)  # over the limit
        client.post(
            "/predict", content=iter([body]), headers={**key, "content-type": "application/json"}
        )
        text = client.get("/metrics").text
        return sorted(line for line in text.splitlines() if line.startswith("http_requests_total"))

    def app():
        return create_app(s, holder_serving(pipeline, s), background=False)

    lean = counters(app())
    assert lean == counters(_fastapi_only(app()))
    assert 'http_requests_total{handler="/predict",method="POST",status="200"} 2.0' in lean


def test_the_entrypoints_protocol_sets_tcp_nodelay_on_accepted_connections():
    """uvicorn loads the protocol the entrypoint names, and it turns Nagle off on a connection
    the way the shared socket of several workers leaves it (uvicorn#3149)."""
    import socket
    from pathlib import Path

    import uvicorn

    from mlplatform.serving.nodelay import NoDelayHttpTools, set_nodelay

    entrypoint = Path(__file__).parents[2] / "fastapi" / "entrypoint.sh"
    assert "--http mlplatform.serving.nodelay:NoDelayHttpTools" in entrypoint.read_text()
    config = uvicorn.Config(lambda: None, http="mlplatform.serving.nodelay:NoDelayHttpTools")
    config.load()
    assert config.http_protocol_class is NoDelayHttpTools
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()),
    ):
        conn, _ = server.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)

            class Transport:  # what asyncio's transport gives: the accepted socket
                def get_extra_info(self, name: str) -> object:
                    return conn if name == "socket" else None

            set_nodelay(Transport())  # type: ignore[arg-type]
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
