"""Concurrent single-row requests share one model call, and each gets exactly the answer it
would get alone, from the model it read; a failing call leaves each request to its handler."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import numpy as np
import pytest
from serving_helpers import holder_serving
from sklearn.linear_model import LogisticRegression
from synthetic_model import fitted_pipeline

from mlplatform.inference.contract import FEATURES
from mlplatform.inference.predictors import OnnxPredictor, convert_to_onnx
from mlplatform.serving.app import create_app
from mlplatform.settings import Settings
from mlplatform.synthetic import synthetic_features

SETTINGS = Settings(API_KEY="")
ROWS = [
    {k: (None if v != v else int(v) if float(v).is_integer() else float(v)) for k, v in r.items()}
    for r in synthetic_features(40, seed=21, missing_rate=0.05)[list(FEATURES)].to_dict("records")
]


@pytest.fixture(scope="module")
def pipeline():
    return fitted_pipeline(LogisticRegression(max_iter=500))


class CountingPredictor:
    """A predictor, counting its calls and the rows in each (slowly, if asked)."""

    def __init__(self, inner, seconds: float = 0.0) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.backend = inner.backend
        self.seconds = seconds
        self.calls: list[int] = []
        self.fail = False

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(len(x))
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("the model failed")
        return self.inner.predict(x)


def serving(pipeline, settings: Settings = SETTINGS, inner=None, seconds: float = 0.0):  # type: ignore[no-untyped-def]
    holder = holder_serving(pipeline, settings)
    counting = CountingPredictor(inner or holder.current.predictor, seconds)
    object.__setattr__(holder.current, "predictor", counting)
    object.__setattr__(holder.current, "backend_reason", f"test: {counting.backend}")
    return create_app(settings, holder, background=False), counting


async def post_all(app, bodies: list[dict]) -> list[httpx.Response]:  # type: ignore[no-untyped-def]
    # As a server does: a handler's exception is the 500 it sent, not raised in the client.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await asyncio.gather(*(client.post("/predict", json=b) for b in bodies))


def test_a_row_gets_the_same_answer_alone_and_in_any_batch(pipeline):
    """onnxruntime rounds a one-row product differently (the last bits of a linear model's
    probability); the predictor pads it, so batching never changes an answer."""
    onnx = OnnxPredictor(convert_to_onnx(pipeline))
    x = synthetic_features(300, seed=3, missing_rate=0.05)[list(FEATURES)].to_numpy(np.float64)
    _, whole = onnx.predict(x)
    for size in (1, 2, 3, 8, 37):
        parts = [onnx.predict(x[i : i + size])[1] for i in range(0, len(x), size)]
        np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_concurrent_requests_share_one_call_and_get_their_own_answers(pipeline):
    app, counting = serving(pipeline)
    responses = asyncio.run(post_all(app, ROWS))
    assert [r.status_code for r in responses] == [200] * len(ROWS)
    assert len(counting.calls) < len(ROWS) and sum(counting.calls) == len(ROWS), counting.calls
    alone = OnnxPredictor(convert_to_onnx(pipeline))
    x = np.array([[np.nan if r[f] is None else r[f] for f in FEATURES] for r in ROWS], float)
    labels, proba = alone.predict(x)
    got = [r.json() for r in responses]
    assert [g["label"] for g in got] == labels.tolist()
    assert [g["probability"] for g in got] == proba.tolist()  # exactly, not approximately
    assert len({g["prediction_id"] for g in got}) == len(ROWS)
    logged = app.state.prediction_log.records()
    assert sorted(row[0] for row in logged) == sorted(g["prediction_id"] for g in got)
    by_id = {row[0]: row for row in logged}
    for g in got:  # each logged row is the request's own row and answer
        assert by_id[g["prediction_id"]][6] == g["probability"]


def test_a_failing_call_leaves_each_request_to_its_handler(pipeline):
    app, counting = serving(pipeline)
    counting.fail = True
    responses = asyncio.run(post_all(app, ROWS[:5]))
    assert [r.status_code for r in responses] == [500] * 5
    assert "prediction_log" not in json.dumps([r.text for r in responses])
    assert app.state.prediction_log.records() == []


def test_a_model_on_sklearn_has_one_call_in_flight_and_the_rows_that_wait_share_the_next():
    """On a thread, a call takes every row that arrived while the previous one ran; each
    answer is the one the row gets alone (a forest scores rows independently)."""
    from sklearn.ensemble import RandomForestClassifier

    from mlplatform.inference.predictors import SklearnPredictor

    forest = fitted_pipeline(RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0))
    app, counting = serving(forest, inner=SklearnPredictor(forest), seconds=0.05)
    assert counting.backend == "sklearn"

    async def waves() -> list[httpx.Response]:
        first = asyncio.ensure_future(post_all(app, ROWS[:3]))
        await asyncio.sleep(0.02)  # the first call is in flight: these wait for it
        return [*await post_all(app, ROWS[3:]), *await first]

    responses = asyncio.run(waves())
    assert [r.status_code for r in responses] == [200] * len(ROWS)
    assert sum(counting.calls) == len(ROWS) and len(counting.calls) <= 4, counting.calls
    alone = SklearnPredictor(forest)
    for row, got in zip(ROWS[3:] + ROWS[:3], responses, strict=True):
        x = np.array([[np.nan if row[f] is None else row[f] for f in FEATURES]], float)
        labels, proba = alone.predict(x)
        assert got.json()["probability"] == proba[0] and got.json()["label"] == labels[0]


def test_rows_of_the_next_turn_join_the_call_and_later_rows_get_their_own():
    """The call waits two turns of the loop after its first row: a row queued by a callback
    of the next turn (a request read by the poll in between) shares it; one queued after the
    call does not."""
    from mlplatform.serving.coalesce import Coalescer

    calls: list[list[str]] = []

    def score(model: object, rows: list[str]) -> list[str]:
        calls.append(rows)
        return [f"{row}!" for row in rows]

    async def turns() -> list[str]:
        coalescer = Coalescer(score, score_later=None, in_thread=lambda model: False)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        first = coalescer.submit("m", "a")
        joined: list[asyncio.Future[str]] = []
        loop.call_soon(lambda: joined.append(coalescer.submit("m", "b")))
        answers = [await first, await joined[0]]
        return [*answers, await coalescer.submit("m", "c")]

    assert asyncio.run(turns()) == ["a!", "b!", "c!"]
    assert calls == [["a", "b"], ["c"]]
