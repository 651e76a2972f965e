"""Shared by the serving unit tests: a fitted pipeline and an app serving it (no registry)."""

from __future__ import annotations

from typing import Any

from mlplatform.features import build_pipeline
from mlplatform.serving.model import LoadedModel, ModelHolder, choose_predictor
from mlplatform.serving.samples import synthetic_features, synthetic_target
from mlplatform.settings import Settings


def fitted_pipeline(classifier: Any, seed: int = 0) -> Any:
    X = synthetic_features(300, seed, missing_rate=0.02)
    return build_pipeline(classifier).fit(X, synthetic_target(X, seed))


def holder_serving(pipeline: Any, settings: Settings, version: str = "7") -> ModelHolder:
    predictor, reason = choose_predictor(pipeline, rows=synthetic_features(200, 3, 0.05))
    holder = ModelHolder(settings)
    holder.current = LoadedModel(
        "heart_disease_classifier", version, None, "v1", {}, predictor, reason
    )
    return holder
