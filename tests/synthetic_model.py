"""Synthetic models for tests and the benchmark (never the real champion): a learnable label on
synthetic heart-disease rows, and a pipeline fitted on it, logged and registered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlplatform.synthetic import synthetic_features

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from mlplatform.settings import Settings


def synthetic_target(frame: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """A learnable label: older, higher-ST-depression, asymptomatic patients are 'disease'."""
    rng = np.random.default_rng(seed)
    score = (
        (frame["age"].fillna(55) - 55) / 10
        + frame["oldpeak"].fillna(1)
        + (frame["cp"] == 4) * 1.5
        + rng.normal(0, 1, len(frame))
    )
    return (score > 1.0).to_numpy(int)


def fitted_pipeline(classifier: Any, n: int = 300, seed: int = 0) -> Any:
    from mlplatform.features import build_pipeline

    X = synthetic_features(n, seed, missing_rate=0.02)
    return build_pipeline(classifier).fit(X, synthetic_target(X, seed))


def register_synthetic_model(
    classifier: Any, settings: Settings, n: int = 400, seed: int = 0, promote: bool = True
) -> ModelVersion:
    """Fit the platform pipeline on synthetic data, log, register (and promote) it."""
    import mlflow

    from mlplatform import registry

    pipeline = fitted_pipeline(classifier, n, seed)
    X = synthetic_features(n, seed, missing_rate=0.02)
    registry.configure(settings)
    mlflow.set_experiment(f"{settings.MLFLOW_EXPERIMENT_NAME}-synthetic")
    with mlflow.start_run(run_name=f"synthetic-{type(classifier).__name__}") as run:
        mlflow.log_metric(
            "train_accuracy", float((pipeline.predict(X) == synthetic_target(X, seed)).mean())
        )
        uri = registry.log_pipeline(pipeline, X.head(5))
    version = registry.register(
        uri, run.info.run_id, {"dataset_version": "synthetic", "synthetic": "true"}, settings
    )
    if promote:
        registry.promote(str(version.version), settings)
    return version


def ensure_champion(settings: Settings) -> ModelVersion:
    """The registry's champion; on a stack without one (a test file run alone), a synthetic
    logistic regression registered and promoted (never replaces a real champion)."""
    from sklearn.linear_model import LogisticRegression

    from mlplatform import registry

    champion = registry.get_champion(settings)
    if champion is None:
        champion = register_synthetic_model(LogisticRegression(max_iter=500), settings)
    return champion
