"""BATCH_ENGINE=spark against the real stack: MLflow's spark_udf of a registered version writes
the same output as the in-process path on the same file (one Spark JVM for the whole file)."""

from __future__ import annotations

import json
import os
import uuid

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import FixedThresholdClassifier
from synthetic_model import register_synthetic_model

from mlplatform.batch import score_file
from mlplatform.inference.loading import load_model
from mlplatform.lake import Lake
from mlplatform.spark_batch import spark_model
from mlplatform.store import DataStore
from mlplatform.synthetic import synthetic_features

CHUNK = 150


def test_spark_output_equals_the_in_process_output_on_the_same_file(stack):
    store = DataStore(Lake(stack))
    # A threshold far from 0.5, as the train DAG's models carry: labels must come from it.
    classifier = FixedThresholdClassifier(
        LogisticRegression(max_iter=500), threshold=0.31, response_method="predict_proba"
    )
    version = register_synthetic_model(classifier, stack, seed=3, promote=False)
    rows = synthetic_features(400, seed=11, missing_rate=0.05).astype(object)
    rows.loc[[7, 260], "chol"] = 5000  # rejected by validation, in two different chunks
    rows.loc[100, "age"] = "old"  # text in a numeric column
    name = f"it-spark-{uuid.uuid4().hex[:8]}.csv"
    data = rows.to_csv(index=False).encode()

    key = store.drop_batch_file(name, data)
    local = score_file(key, load_model(stack, version, fast=False), store, CHUNK, "in-process")
    key = store.drop_batch_file(name, data)
    with spark_model(stack, version, master="local[2]") as model:
        assert model.backend == "spark" and model.version == str(version.version)
        spark = score_file(key, model, store, CHUNK, "spark")
    # Deserialization was allowed only inside the udf's workers, never in this process.
    assert os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION") != "true"

    assert (spark.rows, spark.scored, spark.rejected) == (local.rows, local.scored, local.rejected)
    assert (local.rows, local.rejected) == (400, 3)

    def layout(prefix: str) -> list[str]:
        return sorted(k.removeprefix(prefix) for k in store.lake.list(prefix))

    assert layout(spark.output_prefix) == layout(local.output_prefix)
    assert "_SUCCESS.json" in layout(spark.output_prefix)
    want = store.read_batch_output(local.output_prefix, kind="rejected")
    pd.testing.assert_frame_equal(
        store.read_batch_output(spark.output_prefix, kind="rejected"), want
    )
    want = store.read_batch_output(local.output_prefix)
    out = store.read_batch_output(spark.output_prefix)
    # The same rows, labels, names and versions exactly; probabilities to the last bits (BLAS
    # may round differently on Spark's smaller Arrow batches than on one in-process chunk).
    exact = ["row_id", "label", "label_name", "model_version"]
    pd.testing.assert_frame_equal(out[exact], want[exact])
    np.testing.assert_allclose(out["probability"], want["probability"], rtol=1e-12, atol=0)
    # The threshold decides: P >= 0.31 is "disease", through the same function as in-process.
    np.testing.assert_array_equal(out["label"], (out["probability"] >= 0.31).astype(int))
    assert ((out["probability"] >= 0.31) & (out["probability"] < 0.5)).any()
    success = json.loads(store.lake.get(f"{spark.output_prefix}_SUCCESS.json"))
    assert success["model_version"] == str(version.version) and success["scored"] == 397
