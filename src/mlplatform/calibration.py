"""Calibration and the decision threshold, both chosen on out-of-fold predictions and both
carried INSIDE the model, so every consumer gets the same label for the same row.

The model stays `Pipeline([("preprocess", ...), ("model", final)])`. Only the final step
changes: `final = FixedThresholdClassifier(CalibratedClassifierCV(classifier) or
classifier, threshold=t, response_method="predict_proba")`. Wrapping the final step, not
the whole pipeline, keeps `pipeline[:-1].transform(x)` + `pipeline[-1].predict(...)` (the
serving path) and feature names working, and `predict` of the pipeline, of the final step
and of MLflow's pyfunc (which calls `predict`) all return `proba >= t`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlplatform.evaluation import CALIBRATION_METRICS, calibration_metrics

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from sklearn.pipeline import Pipeline

UNCALIBRATED = "none"
CALIBRATION_METHODS = (UNCALIBRATED, "sigmoid", "isotonic")
MAX_F1 = "max_f1"
MIN_RECALL = "min_recall"
DEFAULT_POLICY = MAX_F1


# ---------------------------------------------------------------------------- threshold
@dataclass(frozen=True)
class ThresholdPolicy:
    """`max_f1` (maximise F1) or `min_recall:R` (the highest threshold whose recall is at
    least R, i.e. the best precision that still finds that share of the sick)."""

    kind: str
    min_recall: float | None = None

    @classmethod
    def parse(cls, text: str) -> ThresholdPolicy:
        name, _, value = text.strip().partition(":")
        if name == MAX_F1 and not value:
            return cls(MAX_F1)
        if name == MIN_RECALL:
            try:
                recall = float(value)
            except ValueError:
                recall = -1.0
            if 0 < recall <= 1:
                return cls(MIN_RECALL, recall)
        raise ValueError(
            f"threshold policy {text!r} is not valid: use '{MAX_F1}' or '{MIN_RECALL}:R' "
            "with 0 < R <= 1, e.g. 'min_recall:0.85'"
        )

    def __str__(self) -> str:
        return self.kind if self.min_recall is None else f"{self.kind}:{self.min_recall}"


def choose_threshold(y: Any, oof_proba: Any, policy: str = DEFAULT_POLICY) -> float:
    """The decision threshold (label = proba >= threshold) for `policy`, chosen on
    out-of-fold probabilities of the training split (never on the test split)."""
    from sklearn.metrics import precision_recall_curve

    rule = ThresholdPolicy.parse(policy)
    y, proba = np.asarray(y).astype(int), np.asarray(oof_proba, dtype=float)
    if len(np.unique(y)) < 2:
        raise ValueError("choosing a threshold needs both classes in the out-of-fold labels")
    # Ascending thresholds; precision[i], recall[i] are those of `proba >= thresholds[i]`.
    precision, recall, thresholds = precision_recall_curve(y, proba)
    precision, recall = precision[:-1], recall[:-1]
    if rule.kind == MAX_F1:
        f1 = np.divide(
            2 * precision * recall,
            precision + recall,
            out=np.zeros_like(precision),
            where=precision + recall > 0,
        )
        return float(thresholds[int(np.argmax(f1))])  # the lowest threshold among ties
    assert rule.min_recall is not None
    # recall falls as the threshold rises; the lowest threshold always has recall 1.
    return float(thresholds[np.flatnonzero(recall >= rule.min_recall)[-1]])


# ---------------------------------------------------------------------------- the model
def calibrated(classifier: Any, method: str, folds: int) -> Any:
    """The classifier, or CalibratedClassifierCV around it (fitted by inner CV). `cv` is an
    int (unshuffled stratified folds): a CV splitter object would be stored in the model,
    and skops would need to trust one more type to load it."""
    from sklearn.base import clone
    from sklearn.calibration import CalibratedClassifierCV

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration {method!r}: use one of {', '.join(CALIBRATION_METHODS)}")
    if method == UNCALIBRATED:
        return clone(classifier)
    return CalibratedClassifierCV(clone(classifier), method=method, cv=folds)


def with_final_step(pipeline: Pipeline, final: Any) -> Pipeline:
    """An unfitted copy of `pipeline` with another final step."""
    from sklearn.base import clone

    copy = clone(pipeline)
    copy.steps[-1] = (copy.steps[-1][0], final)
    return copy


def calibrated_pipeline(pipeline: Pipeline, method: str, folds: int = 5) -> Pipeline:
    return with_final_step(pipeline, calibrated(pipeline.steps[-1][1], method, folds))


def decision_pipeline(
    pipeline: Pipeline, method: str = UNCALIBRATED, threshold: float = 0.5, folds: int = 5
) -> Pipeline:
    """The model to register: calibrated if chosen, with its threshold inside (unfitted)."""
    from sklearn.model_selection import FixedThresholdClassifier

    inner = calibrated(pipeline.steps[-1][1], method, folds)
    final = FixedThresholdClassifier(inner, threshold=threshold, response_method="predict_proba")
    return with_final_step(pipeline, final)


def threshold_of(pipeline: Pipeline) -> float:
    """The threshold a model's labels follow (0.5 for a model without one)."""
    from sklearn.model_selection import FixedThresholdClassifier

    final = pipeline.steps[-1][1]
    if isinstance(final, FixedThresholdClassifier) and final.threshold != "auto":
        return float(final.threshold)
    return 0.5


# ---------------------------------------------------------------------------- choice by CV
@dataclass(frozen=True)
class CalibrationChoice:
    method: str
    criterion: str
    scores: dict[str, dict[str, float]]  # method -> out-of-fold brier, log_loss, ece
    folds: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CalibrationChoice:
        return cls(**data)


def oof_proba(pipeline: Pipeline, x: pd.DataFrame, y: Any, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold P(positive) of an unfitted pipeline (stratified K-fold, seeded)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(pipeline, x, y, cv=cv, method="predict_proba", n_jobs=1)
    return np.asarray(proba[:, 1], dtype=float)


def choose_calibration(
    make_pipeline: Callable[[], Pipeline],
    x: pd.DataFrame,
    y: Any,
    seed: int,
    folds: int = 5,
    methods: Sequence[str] = CALIBRATION_METHODS,
    criterion: str = "brier",
) -> tuple[CalibrationChoice, np.ndarray]:
    """Uncalibrated vs CalibratedClassifierCV (sigmoid, isotonic), compared by out-of-fold
    `criterion` (brier or log_loss; lower wins, the earlier method on a tie). Returns the
    choice and the chosen method's out-of-fold probabilities (for choose_threshold)."""
    if criterion not in CALIBRATION_METRICS:
        raise ValueError(f"criterion {criterion!r}: use one of {', '.join(CALIBRATION_METRICS)}")
    scores, probas = {}, {}
    for method in methods:
        pipeline = calibrated_pipeline(make_pipeline(), method, folds)
        probas[method] = oof_proba(pipeline, x, y, folds, seed)
        scores[method] = calibration_metrics(y, probas[method])
    best = min(methods, key=lambda m: scores[m][criterion])
    return CalibrationChoice(best, criterion, scores, folds, seed), probas[best]


# ---------------------------------------------------------------------------- the plot
def reliability_figure(
    y: Any, probas: Mapping[str, Any], n_bins: int = 10, strategy: str = "quantile"
) -> Figure:
    """Reliability diagram (observed rate against mean predicted probability per bin) of one
    or more models on the same rows; the legend gives each model's ECE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import CalibrationDisplay

    from mlplatform.evaluation import expected_calibration_error

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, proba in probas.items():
        ece = expected_calibration_error(y, proba, n_bins, strategy)
        CalibrationDisplay.from_predictions(
            y, proba, n_bins=n_bins, strategy=strategy, ax=ax, name=f"{name} (ECE {ece:.3f})"
        )
    binning = "equal-mass" if strategy == "quantile" else "equal-width"
    ax.set_title(f"Reliability ({n_bins} {binning} bins)")
    fig.tight_layout()
    return fig
