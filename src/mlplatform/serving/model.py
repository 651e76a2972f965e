"""The served model: loading a registry version, the ONNX fast path, and hot swap.

A `ModelHolder` keeps one immutable `LoadedModel`. A background watcher polls the
registry for the `champion` alias and swaps in a new `LoadedModel` by replacing
one reference, so a request that already took the old one finishes on it and the
request path never calls the registry.

ONNX: the sklearn pipeline spends ~10 ms per row on per-call overhead; the same
pipeline converted with skl2onnx runs in ~0.05 ms. A conversion is used only if it
gives the same labels as the registered pipeline on the test split plus synthetic
rows, else the service falls back to the sklearn pipeline and says why in /model.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from mlplatform.serving.background import Periodic
from mlplatform.serving.schemas import FEATURES
from mlplatform.settings import Settings

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

# Labels must agree exactly; float32 tree thresholds move probabilities slightly.
PROBA_TOLERANCE = 0.05
ONNX_ARTIFACT_DIR = "onnx"
ONNX_TAG = "onnx_parity"


class Predictor(Protocol):
    backend: str

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows in FEATURES order (float, NaN = unknown) -> (labels, P(disease))."""
        ...


class SklearnPredictor:
    backend = "sklearn"

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Transform once, then the classifier's own predict: exactly Pipeline.predict's labels.
        transformed = self.pipeline[:-1].transform(pd.DataFrame(x, columns=list(FEATURES)))
        classifier = self.pipeline.steps[-1][1]
        proba = classifier.predict_proba(transformed)[:, list(classifier.classes_).index(1)]
        return classifier.predict(transformed).astype(np.int64), proba


class OnnxPredictor:
    backend = "onnx"

    def __init__(self, onnx_bytes: bytes) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One thread: the service is one uvicorn worker on a small machine; threads only contend.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.onnx_bytes = onnx_bytes
        self.session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x32 = x.astype(np.float32)
        feeds = {name: x32[:, i : i + 1] for i, name in enumerate(self.inputs)}
        labels, proba = self.session.run(None, feeds)
        return labels.astype(np.int64), proba[:, 1].astype(np.float64)


def convert_to_onnx(pipeline: Pipeline) -> bytes:
    """The pipeline as ONNX with one float input per raw feature (NaN = unknown)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    classifier = pipeline.steps[-1][1]
    model = convert_sklearn(
        pipeline,
        initial_types=[(name, FloatTensorType([None, 1])) for name in FEATURES],
        options={type(classifier): {"zipmap": False}},
    )
    return bytes(model.SerializeToString())


def parity_report(pipeline: Pipeline, candidate: Predictor, rows: pd.DataFrame) -> tuple[bool, str]:
    """Does `candidate` give the registered pipeline's labels (and close probabilities)?"""
    x = rows[list(FEATURES)].to_numpy(np.float64)
    want_labels = pipeline.predict(rows[list(FEATURES)])
    want_proba = pipeline.predict_proba(rows[list(FEATURES)])[:, list(pipeline.classes_).index(1)]
    labels, proba = candidate.predict(x)
    mismatches = int((labels != want_labels).sum())
    max_diff = float(np.abs(proba - want_proba).max())
    ok = mismatches == 0 and max_diff <= PROBA_TOLERANCE
    return ok, (
        f"{len(rows)} parity rows: {mismatches} label mismatches, "
        f"max probability difference {max_diff:.2g}"
    )


def parity_rows(settings: Settings | None = None) -> pd.DataFrame:
    """The current test split's features (when the ETL has made one) plus synthetic rows."""
    from mlplatform.serving.samples import synthetic_features

    frames = [synthetic_features(500, seed=7, missing_rate=0.05)]
    try:
        from mlplatform.etl import load_current_split

        test = load_current_split("test", settings)
        frames.append(test[list(FEATURES)].apply(pd.to_numeric, errors="coerce").astype(np.float64))
    except Exception as err:  # no ETL output yet, or S3 unreachable: synthetic rows still check
        log.info("parity check without the test split: %s", err)
    return pd.concat(frames, ignore_index=True)


def choose_predictor(
    pipeline: Pipeline,
    onnx_bytes: bytes | None = None,
    rows: pd.DataFrame | None = None,
    settings: Settings | None = None,
) -> tuple[Predictor, str]:
    """ONNX when it converts and passes parity, else the sklearn pipeline; with the reason."""
    rows = parity_rows(settings) if rows is None else rows
    try:
        onnx_predictor = OnnxPredictor(onnx_bytes or convert_to_onnx(pipeline))
        ok, report = parity_report(pipeline, onnx_predictor, rows)
    except Exception as err:  # any converter gap (unsupported estimator, option) means fallback
        return SklearnPredictor(pipeline), f"ONNX conversion failed ({type(err).__name__}: {err})"
    if not ok:
        return SklearnPredictor(pipeline), f"ONNX parity failed: {report}"
    return onnx_predictor, f"ONNX parity passed: {report}"


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
        }


def _stored_onnx(client: Any, run_id: str | None, version: str) -> bytes | None:
    """The ONNX file an earlier load logged for this version, if any."""
    if not run_id:
        return None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(
                run_id, f"{ONNX_ARTIFACT_DIR}/v{version}/model.onnx", tmp
            )
            return Path(path).read_bytes()
    except Exception:  # not logged yet
        return None


def _log_onnx(
    client: Any, name: str, run_id: str | None, version: str, predictor: Predictor, reason: str
) -> None:
    """Keep the verified ONNX next to the run and tag the version, so the next load reuses it."""
    try:
        client.set_model_version_tag(name, version, ONNX_TAG, reason[:250])
        if run_id and isinstance(predictor, OnnxPredictor):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.onnx"
                path.write_bytes(predictor.onnx_bytes)
                client.log_artifact(run_id, str(path), f"{ONNX_ARTIFACT_DIR}/v{version}")
    except Exception as err:  # best effort: serving does not depend on it
        log.warning("could not log the ONNX model of version %s: %s", version, err)


def load_version(settings: Settings, version: Any) -> LoadedModel:
    """Load a registry ModelVersion: the sklearn pipeline, then the verified ONNX fast path."""
    from mlplatform import registry

    started = time.perf_counter()
    client = registry.configure(settings)
    name = settings.REGISTERED_MODEL_NAME
    pipeline = registry.load_pipeline(f"models:/{name}/{version.version}")
    predictor, reason = choose_predictor(
        pipeline, _stored_onnx(client, version.run_id, version.version), settings=settings
    )
    if ONNX_TAG not in (version.tags or {}):
        _log_onnx(client, name, version.run_id, version.version, predictor, reason)
    metrics: dict[str, float] = {}
    if version.run_id:
        try:
            metrics = dict(client.get_run(version.run_id).data.metrics)
        except Exception as err:
            log.warning("no metrics for run %s: %s", version.run_id, err)
    tags = version.tags or {}
    return LoadedModel(
        name=name,
        version=str(version.version),
        run_id=version.run_id,
        dataset_version=tags.get("dataset_version"),
        metrics=metrics,
        predictor=predictor,
        backend_reason=reason,
        load_seconds=time.perf_counter() - started,
    )


def configure_mlflow_client_env() -> None:
    """Fail fast instead of MLflow's minutes of retries, so readiness turns degraded quickly;
    no progress bars in the service log."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class ModelHolder:
    """The current model plus the registry's health, as the watcher last saw them."""

    def __init__(
        self, settings: Settings, on_swap: Callable[[LoadedModel], None] | None = None
    ) -> None:
        self.settings = settings
        self.current: LoadedModel | None = None
        self.registry_error: str | None = None
        self.last_poll: datetime | None = None
        self.on_swap = on_swap
        self._watcher = Periodic(
            "model-watcher", self.poll_once, lambda: self.settings.MODEL_POLL_SECONDS, True
        )

    def swap(self, model: LoadedModel) -> None:
        self.current = model  # one reference assignment: atomic for readers
        if self.on_swap:
            self.on_swap(model)

    def poll_once(self) -> bool:
        """Check the champion alias; load and swap if it moved. True when a new model went in."""
        from mlplatform import registry

        try:
            champion = registry.get_champion(self.settings)
            self.last_poll = datetime.now(UTC)
            if champion is None or (
                self.current is not None and str(champion.version) == self.current.version
            ):
                self.registry_error = None
                return False
            model = load_version(self.settings, champion)
        except Exception as err:  # registry or S3 down: keep serving what is loaded
            self.registry_error = f"{type(err).__name__}: {str(err)[:300]}"
            log.warning("model poll failed: %s", self.registry_error)
            return False
        self.registry_error = None
        self.swap(model)
        log.info("serving %s version %s (%s)", model.name, model.version, model.backend)
        return True

    def start(self) -> None:
        self._watcher.start()

    def stop(self) -> None:
        self._watcher.stop()
