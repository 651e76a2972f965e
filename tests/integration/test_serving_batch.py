"""Batch scoring against the real S3: chunks, bad rows, output layout, idempotent re-runs."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from synthetic_model import fitted_pipeline

from mlplatform.batch import score_file
from mlplatform.inference.loading import LoadedModel
from mlplatform.inference.predictors import SklearnPredictor
from mlplatform.lake import Lake
from mlplatform.store import BATCH_DONE, DataStore, batch_output_prefix
from mlplatform.synthetic import synthetic_features

CHUNK = 40


def test_chunked_file_with_bad_rows_is_scored_once_and_moved(stack):
    store = DataStore(Lake(stack))
    pipeline = fitted_pipeline(LogisticRegression(max_iter=500), seed=1)
    model = LoadedModel("m", "1", None, None, {}, SklearnPredictor(pipeline), "test")
    rows = synthetic_features(130, seed=4, missing_rate=0.03).astype(object)
    rows.loc[[5, 77], "chol"] = 5000
    name = f"it-{uuid.uuid4().hex[:8]}.csv"

    def drop() -> str:
        return store.drop_batch_file(name, rows.to_csv(index=False).encode())

    key = drop()
    result = score_file(key, model, store, CHUNK)
    assert (result.rows, result.scored, result.rejected) == (130, 128, 2)
    assert not store.lake.exists(key) and store.lake.exists(f"{BATCH_DONE}{name}")
    prefix = batch_output_prefix(key)
    assert prefix.endswith(f"/{name}/"), "the output keeps the file's full name"
    out = store.read_batch_output(prefix)
    rejected = store.read_batch_output(prefix, kind="rejected")
    assert len([k for k in store.lake.list(prefix) if "/part-" in k]) == 4
    assert list(rejected["row_id"]) == ["5", "77"] and rejected["reason"].str.contains("chol").all()
    good = rows.drop(index=[5, 77]).astype(float)
    np.testing.assert_array_equal(out["row_id"], good.index.astype(str))
    np.testing.assert_array_equal(out["label"], pipeline.predict(good))
    np.testing.assert_allclose(out["probability"], pipeline.predict_proba(good)[:, 1])

    # A retry of the same run rewrites the same keys: no duplicated predictions.
    drop()
    score_file(key, model, store, CHUNK)
    again = store.read_batch_output(prefix)
    assert len(again) == 128
    pd.testing.assert_frame_equal(
        again.drop(columns="scored_at"), out.drop(columns="scored_at"), check_dtype=False
    )
    # Another run of a re-dropped file writes its own output and keeps the earlier one.
    drop()
    later = score_file(key, model, store, CHUNK, run_id="run-2")
    assert later.output_prefix == f"{prefix}run-2/"
    assert store.latest_batch_output(key) == later.output_prefix
    assert len(store.read_batch_output(later.output_prefix)) == 128
    assert len(store.read_batch_output(prefix, kind="part")) == 128


def test_parquet_input_and_the_success_marker(stack):
    store = DataStore(Lake(stack))
    pipeline = fitted_pipeline(LogisticRegression(max_iter=500), seed=2)
    model = LoadedModel("m", "7", None, None, {}, SklearnPredictor(pipeline), "test")
    rows = synthetic_features(90, seed=6, missing_rate=0.03)
    rows.insert(0, "row_id", [f"patient-{i}" for i in range(len(rows))])
    key = store.lake.write_parquet(f"batch/incoming/it-{uuid.uuid4().hex[:8]}.parquet", rows)
    result = score_file(key, model, store, CHUNK, run_id="run-p")
    prefix = result.output_prefix
    success = json.loads(store.lake.get(f"{prefix}_SUCCESS.json"))
    assert success["rows"] == success["scored"] == 90 and success["rejected"] == 0
    assert success["input_key"] == key and success["model_version"] == "7"
    assert success["output_prefix"] == prefix and success["scored_at"]
    out = store.read_batch_output(prefix)
    assert list(out["row_id"]) == list(rows["row_id"]), "the file's own row ids are kept"
    features = rows.drop(columns="row_id")
    np.testing.assert_array_equal(out["label"], pipeline.predict(features))
    np.testing.assert_allclose(out["probability"], pipeline.predict_proba(features)[:, 1])


def test_text_in_a_numeric_column_rejects_only_the_bad_rows(stack):
    """A CSV big enough for several of pyarrow's read blocks, with text in `age` in a later
    chunk only: the fast pass scores the first chunks, the rest is re-read as text, and only
    the two bad rows are rejected; no row is scored twice."""
    store = DataStore(Lake(stack))
    pipeline = fitted_pipeline(LogisticRegression(max_iter=500), seed=3)
    model = LoadedModel("m", "1", None, None, {}, SklearnPredictor(pipeline), "test")
    rows = synthetic_features(40_000, seed=8, missing_rate=0.02).astype(object)
    bad = [25_003, 33_017]
    rows.loc[bad, "age"] = ["sixty", "n/a!"]
    data = rows.to_csv(index=False).encode()
    assert len(data) > 2 * (1 << 20), "more than pyarrow's 1 MiB read block, twice"
    key = store.drop_batch_file(f"it-{uuid.uuid4().hex[:8]}.csv", data)
    result = score_file(key, model, store, 10_000)
    assert (result.rows, result.scored, result.rejected) == (40_000, 39_998, 2)
    rejected = store.read_batch_output(result.output_prefix, kind="rejected")
    assert list(rejected["row_id"]) == [str(i) for i in bad]
    assert list(rejected["age"]) == ["sixty", "n/a!"]
    assert rejected["reason"].str.contains("age").all(), list(rejected["reason"])
    out = store.read_batch_output(result.output_prefix)
    good = rows.drop(index=bad).astype(float)
    np.testing.assert_array_equal(out["row_id"], good.index.astype(str))
    np.testing.assert_array_equal(out["label"], pipeline.predict(good))
