"""Predictors: the registered sklearn pipeline, and its ONNX conversion when that gives the
same answers.

The sklearn pipeline spends ~10 ms per row on per-call overhead; the same pipeline converted
with skl2onnx runs in ~0.05 ms. A conversion is used only if it gives the same answers as the
registered pipeline on the parity rows, by family:
- linear and kernel models (LR, SVM): the same labels, probabilities within 1e-5;
- tree models: zero label flips on at least 20,000 realistic rows (real rows resampled and
  jittered, plus rows sitting exactly on every split threshold, where float32 thresholds
  flip labels), probabilities within 0.05.
Otherwise the caller falls back to sklearn and says why.

A model with its decision threshold inside (FixedThresholdClassifier, mlplatform.calibration)
is converted without that wrapper: ONNX gives the (calibrated) probabilities and the label is
`P >= threshold`, as in sklearn, so a label never contradicts its probability.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from mlplatform.inference.contract import FEATURES

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# Labels must always agree exactly. Probabilities: float32 tree thresholds move them slightly.
LINEAR_TOLERANCE = 1e-5
TREE_TOLERANCE = 0.05
MIN_TREE_PARITY_ROWS = 20_000


class Predictor(Protocol):
    backend: str

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows in FEATURES order (float, NaN = unknown) -> (labels, P(positive))."""
        ...


class SklearnPredictor:
    backend = "sklearn"

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.threshold = decision_threshold(pipeline)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Transform once, then the classifier's own predict: exactly Pipeline.predict's labels.
        transformed = self.pipeline[:-1].transform(pd.DataFrame(x, columns=list(FEATURES)))
        classifier = self.pipeline.steps[-1][1]
        proba = classifier.predict_proba(transformed)[:, list(classifier.classes_).index(1)]
        if self.threshold is not None:
            # FixedThresholdClassifier.predict is P >= threshold on these same probabilities:
            # computed here, the (calibrated) model is not run a second time.
            return threshold_labels(proba, self.threshold), proba
        return classifier.predict(transformed).astype(np.int64), proba


class OnnxPredictor:
    backend = "onnx"

    def __init__(self, onnx_bytes: bytes, threshold: float | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One thread: the service is one uvicorn worker on a small machine; threads only contend.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.onnx_bytes = onnx_bytes  # as converted (and stored, with its digest)
        self.threshold = threshold  # None: the converted model's own labels
        self.session = ort.InferenceSession(
            one_input_graph(onnx_bytes), options, providers=["CPUExecutionProvider"]
        )
        (self.input,) = (i.name for i in self.session.get_inputs())
        self.outputs = [o.name for o in self.session.get_outputs()]
        # The session's C++ run: `InferenceSession.run` re-checks the feeds against the
        # model's inputs in Python (~25 µs, half of a one-row prediction); the feed below is
        # the graph's one input. onnxruntime is pinned; the unit tests run this.
        self._run = self.session._sess.run

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels, proba = self._run(self.outputs, {self.input: x.astype(np.float32)}, None)
        p = proba[:, 1].astype(np.float64)
        if self.threshold is not None:
            # sklearn compares float64 probabilities; comparing in float32 keeps ties exact.
            return (proba[:, 1] >= np.float32(self.threshold)).astype(np.int64), p
        return labels.astype(np.int64, copy=False), p


ONE_INPUT = "features"


def one_input_graph(onnx_bytes: bytes) -> bytes:
    """The converted graph with its one-column-per-feature inputs fed from one [n, 13] float
    input, `features` (columns in FEATURES order), by Gather nodes.

    Per run, onnxruntime turns every feed into a tensor and checks it: 13 feeds cost about
    as much as the whole linear model (~25 µs of ~50 for one row). A Concat of feature inputs
    (the ColumnTransformer's first step) becomes one Gather of its columns; any other use of
    a feature gets a Gather of its column. The same values reach the same nodes, and the
    parity check runs on this graph. A graph already in this form is returned as it is.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    names = [i.name for i in graph.input]
    if names == [ONE_INPUT]:
        return onnx_bytes
    if sorted(names) != sorted(FEATURES):
        raise ValueError(f"ONNX inputs {names} are not the features {list(FEATURES)}")
    column = {name: FEATURES.index(name) for name in names}
    constants: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    used: set[str] = set()

    def gather(columns: list[int], outputs: list[str], tag: str) -> onnx.NodeProto:
        constants.append(numpy_helper.from_array(np.array(columns, np.int64), f"{tag}_columns"))
        return helper.make_node("Gather", [ONE_INPUT, f"{tag}_columns"], outputs, axis=1)

    for i, node in enumerate(graph.node):
        axis = next((a.i for a in node.attribute if a.name == "axis"), None)
        if node.op_type == "Concat" and axis in (1, -1) and set(node.input) <= column.keys():
            nodes.append(gather([column[n] for n in node.input], list(node.output), f"concat{i}"))
        else:
            used.update(n for n in node.input if n in column)
            nodes.append(node)
    used.update(o.name for o in graph.output if o.name in column)
    singles = [gather([column[n]], [n], f"input_{n}") for n in sorted(used, key=column.__getitem__)]
    del graph.node[:]
    graph.node.extend(singles + nodes)
    graph.initializer.extend(constants)
    del graph.input[:]
    graph.input.append(
        helper.make_tensor_value_info(ONE_INPUT, TensorProto.FLOAT, [None, len(FEATURES)])
    )
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def threshold_labels(proba: np.ndarray, threshold: float) -> np.ndarray:
    """The labels of float64 P(positive) at the model's decision threshold, as
    FixedThresholdClassifier.predict gives them (every engine that has only P uses this)."""
    return (proba >= threshold).astype(np.int64)


def decision_threshold(pipeline: Pipeline) -> float | None:
    """The threshold inside the model (FixedThresholdClassifier), None without one."""
    from sklearn.model_selection import FixedThresholdClassifier

    final = pipeline.steps[-1][1]
    if isinstance(final, FixedThresholdClassifier) and final.threshold != "auto":
        return float(final.threshold)
    return None


def probability_pipeline(pipeline: Pipeline) -> Pipeline:
    """The fitted pipeline without its threshold wrapper: what ONNX converts."""
    from sklearn.pipeline import Pipeline

    if decision_threshold(pipeline) is None:
        return pipeline
    final = pipeline.steps[-1][1]
    return Pipeline([*pipeline.steps[:-1], (pipeline.steps[-1][0], final.estimator_)])


def base_classifiers(pipeline: Pipeline) -> list[object]:
    """The fitted base estimators under the threshold and calibration wrappers."""
    final = probability_pipeline(pipeline).steps[-1][1]
    calibrated = getattr(final, "calibrated_classifiers_", None)
    return [c.estimator for c in calibrated] if calibrated else [final]


def convert_to_onnx(pipeline: Pipeline) -> bytes:
    """The pipeline (without a threshold wrapper) as ONNX with one float input per raw
    feature (NaN = unknown)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    pipeline = probability_pipeline(pipeline)
    classifier = pipeline.steps[-1][1]
    model = convert_sklearn(
        pipeline,
        initial_types=[(name, FloatTensorType([None, 1])) for name in FEATURES],
        options={type(classifier): {"zipmap": False}},
    )
    return bytes(model.SerializeToString())


def _is_tree(classifier: object) -> bool:
    return hasattr(classifier, "estimators_") or hasattr(classifier, "_predictors")


def is_tree_model(pipeline: Pipeline) -> bool:
    return any(_is_tree(c) for c in base_classifiers(pipeline))


def _split_thresholds(pipeline: Pipeline) -> dict[str, np.ndarray]:
    """Every split threshold of a tree model, per raw numeric feature, in raw units."""
    preprocess = pipeline[:-1]
    names = list(preprocess.get_feature_names_out())
    found: dict[int, list[float]] = {}
    for classifier in base_classifiers(pipeline):
        _collect_thresholds(classifier, found)
    columns = preprocess.named_steps["preprocess"]  # the ColumnTransformer of features.py
    numeric = next(list(cols) for name, _, cols in columns.transformers_ if name == "numeric")
    scale = columns.named_transformers_["numeric"].named_steps["scale"]
    raw: dict[str, np.ndarray] = {}
    for idx, values in found.items():
        name = names[idx]
        if name not in numeric:
            continue  # one-hot columns: their thresholds sit between 0 and 1, never hit
        j = numeric.index(name)
        raw[name] = np.unique(np.asarray(values) * scale.scale_[j] + scale.mean_[j])
    return raw


def _collect_thresholds(classifier: Any, found: dict[int, list[float]]) -> None:
    if hasattr(classifier, "_predictors"):  # HistGradientBoosting
        for predictors in classifier._predictors:
            for tree in predictors:
                nodes = tree.nodes[tree.nodes["is_leaf"] == 0]
                for idx, thr in zip(nodes["feature_idx"], nodes["num_threshold"], strict=True):
                    found.setdefault(int(idx), []).append(float(thr))
    elif hasattr(classifier, "estimators_"):
        for estimator in classifier.estimators_:
            tree = getattr(estimator, "tree_", None) or estimator[0].tree_
            inner = tree.feature >= 0
            for idx, thr in zip(tree.feature[inner], tree.threshold[inner], strict=True):
                found.setdefault(int(idx), []).append(float(thr))


def parity_rows(pipeline: Pipeline, real: pd.DataFrame, seed: int = 7) -> pd.DataFrame:
    """The rows a candidate must agree on. Real rows as they are; for tree models also at least
    MIN_TREE_PARITY_ROWS resampled and jittered real rows, and rows on every split threshold."""
    features = real[list(FEATURES)].astype(np.float64).reset_index(drop=True)
    if not is_tree_model(pipeline) or features.empty:
        return features
    rng = np.random.default_rng(seed)
    resampled = features.iloc[rng.integers(0, len(features), MIN_TREE_PARITY_ROWS)]
    jittered = resampled.reset_index(drop=True).copy()
    for name in jittered.columns:
        column = jittered[name]
        spread = float(np.nanstd(column)) or 1.0
        noisy = column + rng.normal(0, 0.05 * spread, len(column))
        jittered[name] = noisy.round() if np.all(column.dropna() % 1 == 0) else noisy
    on_thresholds = []
    for name, thresholds in _split_thresholds(pipeline).items():
        rows = features.iloc[rng.integers(0, len(features), len(thresholds))].copy()
        rows[name] = thresholds
        on_thresholds.append(rows)
    return pd.concat([features, jittered, *on_thresholds], ignore_index=True)


def parity_report(pipeline: Pipeline, candidate: Predictor, rows: pd.DataFrame) -> tuple[bool, str]:
    """Does `candidate` give the registered pipeline's labels, and probabilities within the
    family's tolerance, on `rows`?"""
    tree = is_tree_model(pipeline)
    tolerance = TREE_TOLERANCE if tree else LINEAR_TOLERANCE
    x = rows[list(FEATURES)].to_numpy(np.float64)
    want_labels = pipeline.predict(rows[list(FEATURES)])
    want_proba = pipeline.predict_proba(rows[list(FEATURES)])[:, list(pipeline.classes_).index(1)]
    labels, proba = candidate.predict(x)
    mismatches = int((labels != want_labels).sum())
    max_diff = float(np.abs(proba - want_proba).max())
    enough = not tree or len(rows) >= MIN_TREE_PARITY_ROWS
    ok = mismatches == 0 and max_diff <= tolerance and enough
    family = "tree model" if tree else "linear/kernel model"
    return ok, (
        f"{family}, {len(rows)} parity rows: {mismatches} label flips, max probability "
        f"difference {max_diff:.2g} (tolerance {tolerance:g})"
        + ("" if enough else f"; fewer than the {MIN_TREE_PARITY_ROWS} rows a tree model needs")
    )


def choose_predictor(
    pipeline: Pipeline, rows: pd.DataFrame, onnx_bytes: bytes | None = None
) -> tuple[Predictor, str]:
    """ONNX when it converts and passes parity, else the sklearn pipeline; with the reason."""
    try:
        onnx_predictor = OnnxPredictor(
            onnx_bytes or convert_to_onnx(pipeline), decision_threshold(pipeline)
        )
        ok, report = parity_report(pipeline, onnx_predictor, rows)
    except Exception as err:  # any converter gap (unsupported estimator, option) means fallback
        cause = f"{type(err).__name__}: {str(err)[:200]}"
        return SklearnPredictor(pipeline), f"ONNX conversion failed ({cause})"
    if not ok:
        return SklearnPredictor(pipeline), f"ONNX parity failed: {report}"
    return onnx_predictor, f"ONNX parity passed: {report}"
