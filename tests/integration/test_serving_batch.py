"""Batch scoring against the real S3: chunks, bad rows, output layout, idempotent re-runs."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from mlplatform import layout
from mlplatform.batch import BatchModel, drop_file, output_prefix, read_output, score_file
from mlplatform.features import build_pipeline
from mlplatform.lake import exists, list_keys
from mlplatform.serving.model import SklearnPredictor
from mlplatform.serving.samples import synthetic_features, synthetic_target


def test_chunked_file_with_bad_rows_is_scored_once_and_moved(stack):
    settings = stack.model_copy(update={"BATCH_CHUNK_ROWS": 40})
    X = synthetic_features(300, seed=1, missing_rate=0.02)
    pipeline = build_pipeline(LogisticRegression(max_iter=500)).fit(X, synthetic_target(X))
    model = BatchModel("m", "1", SklearnPredictor(pipeline))
    rows = synthetic_features(130, seed=4, missing_rate=0.03).astype(object)
    rows.loc[[5, 77], "chol"] = 5000
    name = f"it-{uuid.uuid4().hex[:8]}.csv"
    key = drop_file(rows, name, settings)
    bucket = settings.DATA_REPO_BUCKET_NAME

    result = score_file(key, model, settings)
    assert (result.rows, result.scored, result.rejected) == (130, 128, 2)
    assert not exists(bucket, key) and exists(bucket, f"{layout.BATCH_DONE}{name}")
    out = read_output(output_prefix(key), settings)
    rejected = read_output(output_prefix(key), settings, kind="rejected")
    assert len([k for k in list_keys(bucket, output_prefix(key)) if "/part-" in k]) == 4
    assert list(rejected["row_id"]) == ["5", "77"] and rejected["reason"].str.contains("chol").all()
    good = rows.drop(index=[5, 77]).astype(float)
    np.testing.assert_array_equal(out["row_id"], good.index.astype(str))
    np.testing.assert_array_equal(out["label"], pipeline.predict(good))
    np.testing.assert_allclose(out["probability"], pipeline.predict_proba(good)[:, 1])

    # The same file delivered again rewrites the same keys: no duplicated predictions.
    drop_file(rows, name, settings)
    score_file(key, model, settings)
    again = read_output(output_prefix(key), settings)
    assert len(again) == 128
    pd.testing.assert_frame_equal(
        again.drop(columns="scored_at"), out.drop(columns="scored_at"), check_dtype=False
    )
