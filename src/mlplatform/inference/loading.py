"""Loading a registry version into a ready predictor: the one path that serving and batch share.

Serving asks for the fast path (ONNX when it passes parity). Batch takes a linear model's ONNX
twin too, with the rows near the decision threshold scored again by the registered sklearn
pipeline, so its labels are the registered model's exactly; a tree model's batches stay on the
pipeline (`predictors.batch_predictor`). The verified ONNX file is stored
beside the model's run with its SHA-256 recorded as a version tag, and a stored file is reused
only when its digest matches that tag: a replaced artifact is never run.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlplatform import registry
from mlplatform.inference.contract import FEATURES
from mlplatform.inference.predictors import (
    Predictor,
    SklearnPredictor,
    batch_predictor,
    batches_on_onnx,
    choose_predictor,
    parity_rows,
)
from mlplatform.model_card import card_from_tags
from mlplatform.settings import Settings

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

ONNX_ARTIFACT_DIR = "onnx"
ONNX_TAG = "onnx_parity"
ONNX_DIGEST_TAG = "onnx_sha256"


class NoChampionError(LookupError):
    """The registry has no champion yet."""


def no_champion_message(settings: Settings) -> str:
    return (
        f"No champion model yet: the registry has no '{settings.REGISTERED_MODEL_NAME}@champion'. "
        f"Run the training DAG `train` in Airflow ({settings.airflow_url}) or `make demo`; "
        f"the prediction service picks the champion up within {settings.MODEL_POLL_SECONDS:g} s."
    )


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    run_id: str | None
    dataset_version: str | None
    metrics: dict[str, float]
    predictor: Predictor
    backend_reason: str
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_seconds: float = 0.0
    card: dict[str, Any] = field(default_factory=dict)  # card_from_tags: the model card's facts

    @property
    def backend(self) -> str:
        return self.predictor.backend

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "dataset_version": self.dataset_version,
            "metrics": self.metrics,
            "loaded_at": self.loaded_at,
            "load_seconds": round(self.load_seconds, 3),
            "backend": self.backend,
            "backend_reason": self.backend_reason,
            **self.card,
        }


def real_rows(settings: Settings) -> pd.DataFrame:
    """The current dataset version's rows (train and test) for the parity check, plus synthetic
    rows (also the only rows before the first ETL, or while S3 is unreachable)."""
    from mlplatform.lake import Lake
    from mlplatform.spec import SPEC
    from mlplatform.store import DataStore
    from mlplatform.synthetic import synthetic_features

    frames = [synthetic_features(500, seed=7, missing_rate=0.05)]
    try:
        store = DataStore(Lake(settings))
        for split in store.load_splits(store.current(), SPEC).values():
            frames.append(split[list(FEATURES)].apply(pd.to_numeric, errors="coerce"))
    except Exception as err:  # no ETL output yet, or S3 unreachable: synthetic rows still check
        log.info("parity check without the dataset's rows: %s", err)
    return pd.concat(frames, ignore_index=True).astype(np.float64)


def _stored_onnx(client: Any, version: ModelVersion) -> bytes | None:
    """The ONNX file an earlier load logged for this version, if its digest matches the tag."""
    digest = (version.tags or {}).get(ONNX_DIGEST_TAG)
    if not version.run_id or not digest:
        return None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(
                version.run_id, f"{ONNX_ARTIFACT_DIR}/v{version.version}/model.onnx", tmp
            )
            data = Path(path).read_bytes()
    except Exception:  # not logged yet
        return None
    if hashlib.sha256(data).hexdigest() != digest:
        log.warning(
            "ONNX artifact of version %s does not match its digest: ignored", version.version
        )
        return None
    return data


def _log_onnx(
    client: Any, name: str, version: ModelVersion, onnx: bytes | None, reason: str
) -> None:
    """Keep the verified ONNX next to the run, its digest and the parity report as tags."""
    try:
        if version.run_id and onnx is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.onnx"
                path.write_bytes(onnx)
                client.log_artifact(
                    version.run_id, str(path), f"{ONNX_ARTIFACT_DIR}/v{version.version}"
                )
            client.set_model_version_tag(
                name, version.version, ONNX_DIGEST_TAG, hashlib.sha256(onnx).hexdigest()
            )
        client.set_model_version_tag(name, version.version, ONNX_TAG, reason[:250])
    except Exception as err:  # best effort: serving does not depend on it
        log.warning("could not log the ONNX model of version %s: %s", version.version, err)


def load_model(
    settings: Settings, version: ModelVersion, fast: bool, batch: bool = False
) -> LoadedModel:
    """Load a registry version: the sklearn pipeline (as data, never code), and with `fast`
    the verified ONNX twin; with `batch` as well, what batch scores with (`batch_predictor`)."""
    started = time.perf_counter()
    client = registry.configure(settings)
    name = settings.REGISTERED_MODEL_NAME
    pipeline = registry.load_pipeline(registry.model_uri(name, version=version.version))
    predictor: Predictor = SklearnPredictor(pipeline)
    reason = "the registered sklearn pipeline"
    if batch and not batches_on_onnx(pipeline):
        fast = False  # its batches stay on the pipeline: no parity check to pay for
    if fast:
        stored = _stored_onnx(client, version)
        rows = parity_rows(pipeline, real_rows(settings))
        predictor, reason = choose_predictor(pipeline, rows, stored)
        if stored is None:
            onnx = getattr(predictor, "onnx_bytes", None)
            _log_onnx(client, name, version, onnx, reason)
        if batch:
            predictor, why = batch_predictor(pipeline, predictor)
            reason = f"{why}; {reason}"
    return describe(client, name, version, predictor, reason, time.perf_counter() - started)


def describe(
    client: Any, name: str, version: Any, predictor: Any, reason: str, load_seconds: float = 0.0
) -> LoadedModel:
    """A registry version and its predictor, with the metrics of its training run."""
    metrics: dict[str, float] = {}
    if version.run_id:
        try:
            metrics = dict(client.get_run(version.run_id).data.metrics)
        except Exception as err:
            log.warning("no metrics for run %s: %s", version.run_id, err)
    return LoadedModel(
        name=name,
        version=str(version.version),
        run_id=version.run_id,
        dataset_version=(version.tags or {}).get("dataset_version"),
        metrics=metrics,
        predictor=predictor,
        backend_reason=reason,
        load_seconds=load_seconds,
        card=card_from_tags(dict(version.tags or {})),
    )


def load_champion(settings: Settings, fast: bool, batch: bool = False) -> LoadedModel:
    """The champion, loaded; fails loudly when there is none."""
    champion = registry.get_champion(settings)
    if champion is None:
        raise NoChampionError(no_champion_message(settings))
    return load_model(settings, champion, fast, batch)
