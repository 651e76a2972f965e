"""Untrusted input never stalls or breaks the service: bounded bodies, short error echoes, the
API key on bytes, the training rule on unknowns, prediction ids and /feedback validation."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from serving_helpers import holder_serving
from sklearn.linear_model import LogisticRegression
from synthetic_model import fitted_pipeline

from mlplatform.prediction_ids import issued_here, new_ids
from mlplatform.serving.app import create_app
from mlplatform.serving.schemas import example_patient
from mlplatform.settings import Settings

# S3 on a closed port: the feedback store is "down" in these in-process tests.
SETTINGS = Settings(API_KEY="", MAX_BODY_BYTES=20_000, MAX_FEEDBACK_ROWS=3, MINIO_PORT=9)
KEY = SETTINGS.PREDICTION_ID_KEY.encode()


@pytest.fixture(scope="module")
def pipeline():
    return fitted_pipeline(LogisticRegression(max_iter=500))


def make_client(pipeline, settings: Settings = SETTINGS) -> TestClient:
    return TestClient(create_app(settings, holder_serving(pipeline, settings), background=False))


def test_a_body_over_the_limit_is_413_before_it_is_parsed(pipeline):
    client = make_client(pipeline)
    big = json.dumps({"rows": [example_patient()] * 200})
    assert len(big) > SETTINGS.MAX_BODY_BYTES
    resp = client.post("/predict/batch", content=big, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and "bytes" in resp.json()["detail"]

    def chunks():  # no Content-Length: the limit holds on the stream itself
        for _ in range(50):
            yield b" " * 1000

    streamed = client.post(
        "/predict", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


def test_errors_never_echo_a_large_input(pipeline):
    client = make_client(pipeline)
    resp = client.post("/predict", json={**example_patient(), "age": "x" * 15_000})
    assert resp.status_code == 422
    assert len(resp.content) < 1_000
    (error,) = resp.json()["detail"]
    assert error["loc"] == ["body", "age"] and error["input"].endswith("...")
    # A long unknown key is named in `loc`: cut there too (found by the e2e fault tests).
    resp = client.post("/predict", json={**example_patient(), "k" * 15_000: 1})
    assert resp.status_code == 422 and len(resp.content) < 1_000, len(resp.content)


@pytest.mark.parametrize("sent", ["ñandú", "wrong", "", "s3cret-but-longer", "\x00"])
def test_any_api_key_is_401_never_5xx(pipeline, sent):
    s = SETTINGS.model_copy(update={"API_KEY": "s3cret"})
    client = make_client(pipeline, s)
    headers = {"X-API-Key": sent.encode("utf-8")} if sent else {}
    assert client.post("/predict", json=example_patient(), headers=headers).status_code == 401
    # The key is checked before the body: an anonymous bad body is a 401, not a 422.
    assert client.post("/predict", content=b"{not json", headers=headers).status_code == 401
    ok = client.post("/predict", json=example_patient(), headers={"X-API-Key": "s3cret"})
    assert ok.status_code == 200
    assert client.post("/feedback", json={}, headers=headers).status_code == 401


def test_a_row_with_more_unknowns_than_training_keeps_is_refused(pipeline):
    client = make_client(pipeline)
    row = {**example_patient(), **dict.fromkeys(("ca", "thal", "chol", "slope"), None)}
    assert client.post("/predict", json=row).status_code == 200  # 4 unknown: the limit
    resp = client.post("/predict", json={**row, "oldpeak": None})
    assert resp.status_code == 422 and "5 of 13 features missing (more than 4)" in resp.text


def test_every_prediction_has_an_id_the_platform_recognises(pipeline):
    client = make_client(pipeline)
    one = client.post("/predict", json=example_patient()).json()
    many = client.post("/predict/batch", json={"rows": [example_patient()] * 3}).json()
    ids = [one["prediction_id"], *(p["prediction_id"] for p in many["predictions"])]
    assert len(set(ids)) == 4 and all(issued_here(i, KEY) for i in ids)
    assert not issued_here(ids[0], b"another key")
    logged = client.app.state.prediction_log.records()
    assert [row[0] for row in logged] == ids


def test_feedback_validation_names_the_fault(pipeline):
    client = make_client(pipeline)
    (good,) = new_ids(1, KEY)
    forged = "p_" + "A" * 26
    cases = [
        ({"prediction_id": forged, "label": 1}, ["body", "prediction_id"], "unknown prediction_id"),
        ({"prediction_id": good, "label": 3}, None, "label"),
        ({"prediction_id": "nope", "label": 1}, None, "prediction_id"),
        ({"outcomes": [{"prediction_id": good, "label": 0}] * 4}, None, "at most 3"),
        ({"outcomes": [{"prediction_id": good, "label": 0}, {"prediction_id": forged, "label": 1}]},
         ["body", "outcomes", 1, "prediction_id"], "unknown prediction_id"),
        ({"prediction_id": good, "label": 1, "observed_at": "yesterday"}, None, "observed_at"),
    ]  # fmt: skip
    for body, loc, words in cases:
        resp = client.post("/feedback", json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert words in resp.text, (body, resp.text)
        if loc is not None:
            assert any(e["loc"] == loc for e in resp.json()["detail"]), resp.text


def test_feedback_with_the_store_down_is_503_and_stores_nothing(pipeline):
    client = make_client(pipeline)
    (good,) = new_ids(1, KEY)
    resp = client.post("/feedback", json={"prediction_id": good, "label": 1})
    assert resp.status_code == 503 and "retry" in resp.json()["detail"]


@pytest.mark.parametrize("key", [b"", b"dev-key", b"k" * 64, b"x" * 200])
@pytest.mark.parametrize("n", [1, 3, 4, 57])
def test_ids_are_hmac_sha256_tagged_base32_for_any_key_and_count(key, n):
    """The fast path (precomputed HMAC states, one base32 call) gives the documented format:
    base32 of 10 random bytes + the first 6 bytes of HMAC-SHA256(key, random bytes)."""
    import base64
    import hashlib
    import hmac
    import re

    from mlplatform.prediction_ids import ID_PATTERN

    ids = new_ids(n, key)
    assert len(set(ids)) == n
    for pid in ids:
        assert re.fullmatch(ID_PATTERN, pid)
        raw = base64.b32decode(pid[2:] + "======")
        assert raw[10:] == hmac.digest(key, raw[:10], hashlib.sha256)[:6]
        assert issued_here(pid, key) and not issued_here(pid, key + b"!")


def test_the_prediction_log_keeps_the_newest_rows_and_counts_the_dropped(monkeypatch):
    import numpy as np

    from mlplatform.serving import prediction_log as pl

    monkeypatch.setattr(pl, "MAX_BUFFERED", 5)
    log = pl.PredictionLog(store=None, flush_seconds=60)  # type: ignore[arg-type]
    x = np.arange(4 * 13, dtype=np.float64).reshape(4, 13)
    for batch in range(3):  # 12 rows into room for 5
        ids = [f"p{batch}{i}" for i in range(4)]
        log.record(ids, "predict_batch", "m", "1", x, np.array([0, 1, 0, 1]), np.full(4, 0.5))
    assert log.buffered == 5 and log.dropped == 7
    records = log.records()
    assert [r[0] for r in records] == ["p13", "p20", "p21", "p22", "p23"]
    assert records[0][5:7] == (1, 0.5) and list(records[0][7:]) == list(x[3])
    assert len(records[0]) == len(pl.COLUMNS)


def test_a_failed_prediction_log_flush_keeps_every_row_for_the_next():
    import numpy as np

    from mlplatform.serving.prediction_log import COLUMNS, PredictionLog

    class Store:  # the lake's one call the log makes; down first, then up
        def __init__(self) -> None:
            self.up, self.frames = False, []

        def write_prediction_log(self, frame, now) -> None:
            if not self.up:
                raise ConnectionError("S3 down")
            self.frames.append(frame)

    store = Store()
    log = PredictionLog(store, flush_seconds=60)  # type: ignore[arg-type]
    x = np.ones((2, 13))
    log.record(["a", "b"], "predict_batch", "m", "1", x, np.array([0, 1]), np.array([0.2, 0.9]))
    assert log.flush() == 0 and log.buffered == 2 and "S3 down" in (log.error or "")
    log.record(["c"], "predict", "m", "1", x[:1], np.array([1]), np.array([0.7]))
    store.up = True
    assert log.flush() == 3 and log.buffered == 0 and log.error is None
    (frame,) = store.frames
    assert list(frame.columns) == COLUMNS and list(frame["prediction_id"]) == ["a", "b", "c"]
    assert list(frame["label"]) == [0, 1, 1] and list(frame["probability"]) == [0.2, 0.9, 0.7]


class _Store:
    """The lake as the prediction log sees it: up or down (pure logic of spilling)."""

    def __init__(self, up: bool) -> None:
        self.up, self.written = up, []

    def write_prediction_log(self, frame, now):  # type: ignore[no-untyped-def]
        if not self.up:
            raise ConnectionError("S3 is down")
        self.written.append(frame)


def test_a_shutdown_with_s3_down_spills_to_disk_and_the_next_start_sends_it(tmp_path):
    import numpy as np

    from mlplatform.serving.prediction_log import PredictionLog

    down = PredictionLog(_Store(up=False), 10, tmp_path)
    ids = new_ids(3, KEY)
    down.record(ids, "predict", "m", "7", np.zeros((3, 13)), np.array([0, 1, 0]), np.ones(3) / 2)
    down.stop()
    assert down.buffered == 0 and len(list(tmp_path.glob("*.parquet"))) == 1
    store = _Store(up=True)
    again = PredictionLog(store, 10, tmp_path)  # the restarted service
    again.flush()
    assert list(store.written[0]["prediction_id"]) == ids
    assert not list(tmp_path.glob("*.parquet"))


def test_ids_come_from_a_pool_each_once_and_a_forked_worker_makes_its_own():
    import multiprocessing

    from mlplatform.prediction_ids import _BLOCK

    key = b"pool-test"
    first = new_ids(1, key)  # fills the pool
    many = [pid for _ in range(_BLOCK + 10) for pid in new_ids(1, key)] + new_ids(700, key)
    assert len(set(first + many)) == 1 + _BLOCK + 10 + 700
    assert all(issued_here(pid, key) for pid in many)
    # A forked worker must not hand out the ids left in its parent's pool.
    parent_next = set(new_ids(5, key))
    fork = multiprocessing.get_context("fork")
    with fork.Pool(1) as pool:
        child = set(pool.apply(new_ids, (5, key)))
    assert not child & parent_next and not child & set(new_ids(_BLOCK, key))


def test_the_log_frame_is_the_records_frame_built_by_columns():
    import numpy as np
    import pandas as pd

    from mlplatform.serving.prediction_log import COLUMNS, PredictionLog, entries_frame

    log = PredictionLog(store=None, flush_seconds=60)  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    for n in (1, 3, 1, 100, 2):
        x = rng.normal(size=(n, 13))
        x[0, 4] = np.nan
        log.record(new_ids(n, KEY), "predict", "m", str(n), x, rng.integers(0, 2, n), rng.random(n))
    want = pd.DataFrame.from_records(log.records(), columns=COLUMNS)
    pd.testing.assert_frame_equal(entries_frame(list(log._buffer)), want)
