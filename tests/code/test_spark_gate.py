"""The Spark engine's safety gate, without a JVM: only a model the platform's safe loader
accepts is made loadable for spark_udf, and then with the platform's trusted types."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import FixedThresholdClassifier
from synthetic_model import fitted_pipeline

from mlplatform import registry
from mlplatform.errors import ConfigurationError
from mlplatform.inference.contract import FEATURES
from mlplatform.inference.predictors import (
    SklearnPredictor,
    decision_threshold,
    threshold_labels,
)
from mlplatform.settings import Settings
from mlplatform.spark_batch import (
    SparkUdfPredictor,
    skops_digest,
    spark_session,
    verified_copy,
)
from mlplatform.synthetic import synthetic_features


def _saved(pipeline, path: Path, serialization: str) -> Path:
    mlflow.sklearn.save_model(
        pipeline,
        str(path),
        serialization_format=serialization,
        skops_trusted_types=registry.SKOPS_TRUSTED_TYPES if serialization == "skops" else None,
        pip_requirements=registry.pip_requirements(),
    )
    return path


def test_a_verified_copy_answers_with_probabilities_and_the_platforms_trusted_types(tmp_path):
    classifier = FixedThresholdClassifier(LogisticRegression(max_iter=500), threshold=0.4)
    model_dir = _saved(fitted_pipeline(classifier), tmp_path / "m", "skops")
    before = skops_digest(model_dir)
    pipeline = verified_copy(model_dir)
    meta = yaml.safe_load((model_dir / "MLmodel").read_text())
    assert meta["flavors"]["python_function"]["predict_fn"] == "predict_proba"
    assert meta["flavors"]["sklearn"]["skops_trusted_types"] == registry.SKOPS_TRUSTED_TYPES
    assert skops_digest(model_dir) == before, "the model file itself is never changed"
    assert decision_threshold(pipeline) == 0.4


def test_a_pickled_model_is_refused_before_spark_loads_it(tmp_path):
    model_dir = _saved(fitted_pipeline(LogisticRegression(max_iter=500)), tmp_path / "p", "pickle")
    mlmodel = (model_dir / "MLmodel").read_text()
    with pytest.raises(registry.UntrustedModelError, match="not skops"):
        verified_copy(model_dir)
    assert (model_dir / "MLmodel").read_text() == mlmodel


def test_a_model_without_its_decision_threshold_is_refused(tmp_path):
    pipeline = fitted_pipeline(LogisticRegression(max_iter=500))
    with pytest.raises(ConfigurationError, match="decision threshold"):
        SparkUdfPredictor(None, tmp_path, pipeline)  # type: ignore[arg-type]


def test_threshold_labels_are_the_in_process_predictors_labels():
    classifier = FixedThresholdClassifier(LogisticRegression(max_iter=500), threshold=0.3)
    pipeline = fitted_pipeline(classifier)
    x = synthetic_features(300, seed=5, missing_rate=0.05)[list(FEATURES)].to_numpy(np.float64)
    labels, proba = SklearnPredictor(pipeline).predict(x)
    np.testing.assert_array_equal(threshold_labels(proba, 0.3), labels)
    frame = pd.DataFrame(x, columns=list(FEATURES))
    np.testing.assert_array_equal(labels, pipeline.predict(frame))


def test_without_java_the_engine_says_what_to_install(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    with (
        pytest.raises(ConfigurationError, match="openjdk-17-jre-headless"),
        spark_session(settings),
    ):
        pass
