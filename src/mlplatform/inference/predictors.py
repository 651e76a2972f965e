"""Predictors: the registered sklearn pipeline, and its ONNX conversion when that gives the
same answers.

The sklearn pipeline spends ~10 ms per row on per-call overhead; the same pipeline converted
with skl2onnx runs in ~0.05 ms. A conversion is used only if it gives the same answers as the
registered pipeline on the parity rows, by family:
- linear and kernel models (LR, SVM): the same labels, probabilities within 1e-5;
- tree models: zero label flips on at least 20,000 realistic rows (real rows resampled and
  jittered, plus rows sitting exactly on every split threshold, where any rounding that
  differs from sklearn's flips labels), probabilities within 0.05. Their graph computes in
  double as sklearn does, float32 only inside the trees (`tree_precision_graph`).
Otherwise the caller falls back to sklearn and says why.

A model with its decision threshold inside (FixedThresholdClassifier, mlplatform.calibration)
is converted without that wrapper: ONNX gives the (calibrated) probabilities and the label is
`P >= threshold`, as in sklearn, so a label never contradicts its probability.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from mlplatform.inference.contract import FEATURES

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

_CONVERTING = threading.Lock()
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
        (graph_input,) = self.session.get_inputs()
        self.input = graph_input.name
        # float, or double for tree models (see `convert_to_onnx`)
        self.dtype = np.float64 if graph_input.type == "tensor(double)" else np.float32
        self.outputs = [o.name for o in self.session.get_outputs()]
        # The session's C++ run: `InferenceSession.run` re-checks the feeds against the
        # model's inputs in Python (~25 µs, half of a one-row prediction); the feed below is
        # the graph's one input. onnxruntime is pinned; the unit tests run this.
        self._run = self.session._sess.run

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(x) == 1:
            # onnxruntime's one-row matrix product rounds differently from its many-row one
            # (the last bits of a linear model's probability): a row gets the same answer
            # alone, in a batch or coalesced with others (`serving.coalesce`).
            labels, proba = self._run_rows(np.repeat(x, 2, axis=0))
            labels, proba = labels[:1], proba[:1]
        else:
            labels, proba = self._run_rows(x)
        p = proba[:, 1].astype(np.float64)
        if self.threshold is not None:
            # In the graph's own precision: a float32 tie with the threshold stays a tie.
            return (proba[:, 1] >= proba.dtype.type(self.threshold)).astype(np.int64), p
        return labels.astype(np.int64, copy=False), p

    def _run_rows(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels, proba = self._run(self.outputs, {self.input: x.astype(self.dtype)}, None)
        return labels, proba


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
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    names = [i.name for i in graph.input]
    if names == [ONE_INPUT]:
        return onnx_bytes
    if sorted(names) != sorted(FEATURES):
        raise ValueError(f"ONNX inputs {names} are not the features {list(FEATURES)}")
    column = {name: FEATURES.index(name) for name in names}
    element_type = graph.input[0].type.tensor_type.elem_type
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
        helper.make_tensor_value_info(ONE_INPUT, element_type, [None, len(FEATURES)])
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
    """The pipeline (without a threshold wrapper) as ONNX with one input per raw feature
    (NaN = unknown): float, or for tree models double, computed as sklearn does
    (`tree_precision_graph`)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    tree = is_tree_model(pipeline)
    pipeline = probability_pipeline(pipeline)
    classifier = pipeline.steps[-1][1]
    tensor = DoubleTensorType if tree else FloatTensorType
    with _interpolating_isotonic():
        model = convert_sklearn(
            pipeline,
            initial_types=[(name, tensor([None, 1])) for name in FEATURES],
            options={type(classifier): {"zipmap": False}},
        )
    data = bytes(model.SerializeToString())
    if not tree:
        return data
    return tree_precision_graph(data, base_classifiers(pipeline), _fitted_imputers(pipeline))


def _fitted_imputers(estimator: Any) -> list[Any]:
    """Every fitted SimpleImputer inside a pipeline (its float64 fill values)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, SimpleImputer):
        return [estimator]
    if isinstance(estimator, Pipeline):
        return [i for _, step in estimator.steps for i in _fitted_imputers(step)]
    if isinstance(estimator, ColumnTransformer):
        return [i for _, t, _ in estimator.transformers_ for i in _fitted_imputers(t)]
    return []


def tree_precision_graph(onnx_bytes: bytes, forests: list[Any], imputers: list[Any]) -> bytes:
    """A double-precision conversion made to compute exactly what sklearn does.

    In float32 the scaling rounds differently from sklearn's float64, and rows near a split
    threshold go the other way (hundreds of label flips on the parity rows). sklearn scales
    in float64 and its trees compare float32 values with float64 thresholds. So the
    preprocessing runs in double, each tree ensemble gets its input cast to float
    (its probabilities are cast back to double for the calibration), and the imputers, which
    onnxruntime runs only in float, become `Where(IsNaN(x), fill, x)` with the same fill.
    The imputers' fill values are `imputers`' float64 ones (the graph holds float32 copies).
    `forests` are the fitted ensembles, in the graph's order: each threshold becomes the
    float32 at or below sklearn's float64 one (skl2onnx rounds to the nearest float32, which
    decides a value between the two the other way).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    nodes: list[onnx.NodeProto] = []
    ensembles = iter(forests)
    for i, node in enumerate(graph.node):
        if node.op_type == "Imputer":
            attrs = {a.name: a for a in node.attribute}
            if not np.isnan(attrs["replaced_value_float"].f):
                raise ValueError("only imputers of missing values (NaN) are rewritten")
            fill = _exact_fill(np.array(attrs["imputed_value_floats"].floats, np.float32), imputers)
            graph.initializer.append(numpy_helper.from_array(fill, f"imputer{i}_fill"))
            (x,), (y,) = node.input, node.output
            nodes.append(helper.make_node("IsNaN", [x], [f"imputer{i}_missing"]))
            nodes.append(
                helper.make_node("Where", [f"imputer{i}_missing", f"imputer{i}_fill", x], [y])
            )
        elif node.op_type == "TreeEnsembleClassifier":
            _floor_thresholds(node, next(ensembles))
            x, proba = node.input[0], node.output[1]
            nodes.append(helper.make_node("Cast", [x], [f"trees{i}_x"], to=TensorProto.FLOAT))
            node.input[0], node.output[1] = f"trees{i}_x", f"trees{i}_proba"
            nodes.append(node)
            nodes.append(
                helper.make_node("Cast", [f"trees{i}_proba"], [proba], to=TensorProto.DOUBLE)
            )
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    for output in graph.output:  # an uncalibrated forest's probabilities are the output
        if output.type.tensor_type.elem_type == TensorProto.FLOAT:
            output.type.tensor_type.elem_type = TensorProto.DOUBLE
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _exact_fill(converted: np.ndarray, imputers: list[Any]) -> np.ndarray:
    """The float64 fill values of the one imputer whose float32 copy the graph holds."""
    found = [
        np.asarray(i.statistics_, np.float64)
        for i in imputers
        if np.array_equal(np.asarray(i.statistics_, np.float32), converted, equal_nan=True)
    ]
    if not found or any(not np.array_equal(f, found[0], equal_nan=True) for f in found):
        raise ValueError("no single fill matches an Imputer node of the graph")
    return found[0].reshape(1, -1)


def _floor_thresholds(node: Any, forest: Any) -> None:
    """Set a TreeEnsembleClassifier's thresholds to the float32 at or below the forest's
    float64 ones: `float32 x <= that` decides as sklearn's `float32 x <= float64 threshold`."""
    attrs = {a.name: a for a in node.attribute}
    estimators = getattr(forest, "estimators_", None)
    if estimators is None or {m.decode() for m in attrs["nodes_modes"].strings} - {
        "BRANCH_LEQ",
        "LEAF",
    }:
        return  # not a forest of sklearn trees (HistGradientBoosting): the parity check decides
    trees = [getattr(e, "tree_", None) or e[0].tree_ for e in np.ravel(estimators)]
    exact = np.array(
        [
            trees[t].threshold[n]
            for t, n in zip(attrs["nodes_treeids"].ints, attrs["nodes_nodeids"].ints, strict=True)
        ]
    )
    leaf = np.array([m == b"LEAF" for m in attrs["nodes_modes"].strings])
    below = exact.astype(np.float32)
    below = np.where(below > exact, np.nextafter(below, np.float32(-np.inf)), below)
    below[leaf] = np.asarray(attrs["nodes_values"].floats, np.float32)[leaf]
    converted = np.asarray(attrs["nodes_values"].floats, np.float32)
    if np.abs(below - converted).max(initial=0) > np.abs(np.spacing(converted)).max(initial=0):
        raise ValueError("the graph's trees are not the forest's")  # more than a rounding apart
    del attrs["nodes_values"].floats[:]
    attrs["nodes_values"].floats.extend(below.tolist())


@contextmanager
def _interpolating_isotonic() -> Iterator[None]:
    """skl2onnx (1.20) converts an isotonic calibrator as the y of the nearest threshold;
    sklearn interpolates between thresholds (np.interp). While converting, the calibrator's
    graph interpolates: j = the last threshold <= x (clipped to the first segment), then
    y[j] + s * (y[j+1] - y[j]) with s = (x - x[j]) / (x[j+1] - x[j]) clipped to [0, 1], which
    is also the calibrator's clipping outside its range. The parity check still decides."""
    from skl2onnx.operator_converters import calibrated_classifier_cv as module

    original = module._transform_isotonic

    def interpolating(
        scope: Any, container: Any, model: Any, t: str, k: int, dtype: Any, proto_type: int
    ) -> str:
        calibrator = model.calibrators[k]
        xs = np.asarray(calibrator.X_thresholds_, dtype=dtype)
        ys = np.asarray(calibrator.y_thresholds_, dtype=dtype)
        if len(xs) < 2 or calibrator.out_of_bounds != "clip":
            return str(original(scope, container, model, t, k, dtype, proto_type))
        name = scope.get_unique_variable_name

        def const(value: Any, shape: list[int]) -> str:
            var = name("isotonic_const")
            container.add_initializer(var, proto_type, shape, np.asarray(value).ravel().tolist())
            return var

        def node(op: str, inputs: list[str], **attrs: Any) -> str:
            out = name(f"isotonic_{op.lower()}")
            container.add_node(op, inputs, out, name=scope.get_unique_operator_name(op), **attrs)
            return out

        column = node("Reshape", [t, _int_constant(container, name, [-1, 1])])
        below = node("Cast", [node("LessOrEqual", [const(xs, [1, len(xs)]), column])], to=7)
        count = node("ReduceSum", [below, _int_constant(container, name, [1])], keepdims=1)
        j = node(
            "Clip",
            [
                node("Sub", [count, _int_constant(container, name, 1)]),
                _int_constant(container, name, 0),
                _int_constant(container, name, len(xs) - 2),
            ],
        )
        j1 = node("Add", [j, _int_constant(container, name, 1)])
        x_table, y_table = const(xs, [len(xs)]), const(ys, [len(ys)])
        x0, x1 = node("Gather", [x_table, j]), node("Gather", [x_table, j1])
        y0, y1 = node("Gather", [y_table, j]), node("Gather", [y_table, j1])
        share = node("Div", [node("Sub", [column, x0]), node("Sub", [x1, x0])])
        share = node("Clip", [share, const(0.0, []), const(1.0, [])])
        return node("Add", [y0, node("Mul", [share, node("Sub", [y1, y0])])])

    with _CONVERTING:  # the model watcher's thread and a caller may convert at once
        module._transform_isotonic = interpolating
        try:
            yield
        finally:
            module._transform_isotonic = original


def _int_constant(container: Any, name: Any, value: Any) -> str:
    """An int64 initializer (shapes, indices, axes)."""
    from onnx import TensorProto

    var = name("isotonic_int")
    values = np.asarray(value, dtype=np.int64)
    container.add_initializer(var, TensorProto.INT64, list(values.shape), values.ravel().tolist())
    return str(var)


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


# Batch re-scores with sklearn the rows this close to the threshold: the linear parity
# tolerance, which parity verified (measured differences are ~40x smaller). A sklearn call
# costs ~5-10 ms whatever its rows, so a wider margin would pay it on every chunk.
BOUNDARY_MARGIN = LINEAR_TOLERANCE


def batches_on_onnx(pipeline: Pipeline) -> bool:
    """Whether batch may score `pipeline` on its ONNX twin: a linear model's is 2-3x sklearn's
    rows/s on a 50,000-row chunk; a forest's TreeEnsemble is no faster than sklearn on big
    batches (0.76-0.80 s against 0.64-0.72 s for 50,000 rows of the demo's)."""
    return not is_tree_model(pipeline)


def batch_predictor(pipeline: Pipeline, predictor: Predictor) -> tuple[Predictor, str]:
    """What a batch job scores with, given the serving choice `predictor`: the verified ONNX
    twin with its boundary rows checked by sklearn where `batches_on_onnx`, else the
    pipeline itself."""
    sklearn = SklearnPredictor(pipeline)
    if isinstance(predictor, OnnxPredictor) and batches_on_onnx(pipeline):
        checked = BoundaryCheckedPredictor(predictor, sklearn, BOUNDARY_MARGIN)
        return checked, f"batch: ONNX, rows within {BOUNDARY_MARGIN:g} of the threshold on sklearn"
    return sklearn, "batch: the registered sklearn pipeline"


class BoundaryCheckedPredictor:
    """The ONNX twin for big batches, with the rows whose probability is within the parity
    `margin` of the decision threshold scored again by the sklearn pipeline: a label is then
    the pipeline's exactly whenever ONNX's probability is within `margin` of sklearn's (parity
    verified 1e-5; measured 3e-7 for linear models). The other rows' probabilities are ONNX's,
    the ones `/predict` answers."""

    backend = "onnx"

    def __init__(self, onnx: OnnxPredictor, sklearn: SklearnPredictor, margin: float) -> None:
        self.onnx = onnx
        self.sklearn = sklearn
        self.margin = margin
        # Without a threshold wrapper a binary classifier's label is P > 0.5 (ties to 0).
        self.threshold = 0.5 if sklearn.threshold is None else sklearn.threshold

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels, proba = self.onnx.predict(x)
        near = np.abs(proba - self.threshold) <= self.margin
        if near.any():
            labels, proba = labels.copy(), proba.copy()
            labels[near], proba[near] = self.sklearn.predict(x[near])
        return labels, proba


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
