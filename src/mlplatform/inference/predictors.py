"""Predictors: the registered sklearn pipeline, and its ONNX conversion when that gives the
same answers.

The sklearn pipeline spends ~10 ms per row on per-call overhead; the same pipeline converted
with skl2onnx runs in ~0.05 ms. A conversion is used only if it gives the same labels as the
registered pipeline on the parity rows, else the caller falls back to sklearn and says why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from mlplatform.inference.contract import FEATURES

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# Labels must agree exactly; float32 tree thresholds move probabilities slightly.
PROBA_TOLERANCE = 0.05


class Predictor(Protocol):
    backend: str

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows in FEATURES order (float, NaN = unknown) -> (labels, P(positive))."""
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
        self.outputs = [o.name for o in self.session.get_outputs()]
        # The session's C++ run: `InferenceSession.run` re-checks the feeds against the
        # model's inputs in Python (~25 µs, half of a one-row prediction); the feeds below are
        # built from that same input list. onnxruntime is pinned; the unit tests run this.
        self._run = self.session._sess.run

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x32 = x.astype(np.float32)
        feeds = {name: x32[:, i : i + 1] for i, name in enumerate(self.inputs)}
        labels, proba = self._run(self.outputs, feeds, None)
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


def choose_predictor(
    pipeline: Pipeline, rows: pd.DataFrame, onnx_bytes: bytes | None = None
) -> tuple[Predictor, str]:
    """ONNX when it converts and passes parity, else the sklearn pipeline; with the reason."""
    try:
        onnx_predictor = OnnxPredictor(onnx_bytes or convert_to_onnx(pipeline))
        ok, report = parity_report(pipeline, onnx_predictor, rows)
    except Exception as err:  # any converter gap (unsupported estimator, option) means fallback
        return SklearnPredictor(pipeline), f"ONNX conversion failed ({type(err).__name__}: {err})"
    if not ok:
        return SklearnPredictor(pipeline), f"ONNX parity failed: {report}"
    return onnx_predictor, f"ONNX parity passed: {report}"
