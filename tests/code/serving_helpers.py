"""Shared by the serving unit tests: a fitted pipeline and an app serving it (no registry)."""

from __future__ import annotations

from typing import Any

from mlplatform.inference.loading import LoadedModel
from mlplatform.inference.predictors import choose_predictor
from mlplatform.serving.watcher import ModelHolder
from mlplatform.settings import Settings
from mlplatform.synthetic import synthetic_features


def holder_serving(pipeline: Any, settings: Settings, version: str = "7") -> ModelHolder:
    predictor, reason = choose_predictor(pipeline, synthetic_features(200, 3, 0.05))
    holder = ModelHolder(settings)
    holder.current = LoadedModel(
        "heart_disease_classifier", version, None, "v1", {}, predictor, reason
    )
    return holder
