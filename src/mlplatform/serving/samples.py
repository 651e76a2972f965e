"""Synthetic patients drawn from the SPEC's ranges and codes.

Used for ONNX parity checks (on top of the test split), the batch demo, the
benchmark and tests; never for training the real champion.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlplatform.dataset import SPEC
from mlplatform.serving.schemas import FEATURES

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from mlplatform.settings import Settings


def synthetic_features(n: int, seed: int = 0, missing_rate: float = 0.0) -> pd.DataFrame:
    """`n` valid patients (float columns in FEATURES order); `missing_rate` of values NaN."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for f in SPEC.numeric:
        values = rng.uniform(f.minimum, f.maximum, n)
        cols[f.name] = np.round(values) if f.integer else np.round(values, 1)
    for c in SPEC.categorical:
        cols[c.name] = rng.choice(np.array(list(c.codes), dtype=np.float64), n)
    frame = pd.DataFrame(cols)[list(FEATURES)]
    if missing_rate:
        frame = frame.mask(rng.random(frame.shape) < missing_rate)
    return frame


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


def register_synthetic_model(
    classifier: Any, settings: Settings, n: int = 400, seed: int = 0, promote: bool = True
) -> ModelVersion:
    """Fit the platform pipeline on synthetic data, log, register (and promote) it.

    For tests and the benchmark when no trained champion exists; the tags say so.
    """
    import mlflow

    from mlplatform import registry
    from mlplatform.features import build_pipeline

    X = synthetic_features(n, seed, missing_rate=0.02)
    pipeline = build_pipeline(classifier).fit(X, synthetic_target(X, seed))
    registry.configure(settings)
    mlflow.set_experiment(f"{settings.MLFLOW_EXPERIMENT_NAME}-synthetic")
    with mlflow.start_run(run_name=f"synthetic-{type(classifier).__name__}"):
        mlflow.log_metric(
            "train_accuracy", float((pipeline.predict(X) == synthetic_target(X, seed)).mean())
        )
        info = registry.log_pipeline(pipeline, X.head(5))
    version = registry.register(
        info, {"dataset_version": "synthetic", "synthetic": "true"}, settings
    )
    if promote:
        registry.promote(version.version, settings)
    return version
