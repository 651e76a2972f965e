"""Data drift and prediction drift of a window of served rows against the champion's reference.

The reference is the champion's training split (the 13 features) plus the champion's
out-of-fold predictions on it (`label`, `probability`): see `reference_frame`. The window is a
slice of the prediction log, which has the same columns. Evidently runs the tests (it picks the test by column
type and size: K-S for numbers, chi-square or Z-test for codes, p < 0.05 is drift, on samples up
to 1000 rows) and renders the HTML report; the column types come from the SPEC, not from guessing
on a small window.

A feature that is entirely missing in the window (e.g. a hospital that never measures
cholesterol) cannot be tested by Evidently; it counts as drifted, since the model then
imputes every value. A feature empty in the reference is not testable and is left out of the share.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.monitoring.policy import INSUFFICIENT_DATA, OK, Status
from mlplatform.spec import SPEC

LABEL = "label"  # the predicted class, as the prediction log names it
PROBABILITY = "probability"  # the predicted probability of the positive class
PREDICTION_COLUMNS = (LABEL, PROBABILITY)
# A model's reference, logged in its training run (a run logs one model).
REFERENCE_ARTIFACT = "monitoring/reference.parquet"
EMPTY_IN_WINDOW = "all missing in window"
EMPTY_IN_REFERENCE = "all missing in reference"


@dataclass(frozen=True)
class ColumnDrift:
    """One column's test. `drifted` is None when the column could not be tested."""

    column: str
    method: str
    score: float | None
    threshold: float | None
    drifted: bool | None
    missing_share_reference: float
    missing_share_current: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnDrift:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class DataDrift:
    """Feature drift of a window. `drift_share` is None with status insufficient_data."""

    status: Status
    rows: int
    reference_rows: int
    drift_share: float | None
    drifted_features: list[str]
    tested_features: int
    columns: list[ColumnDrift]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataDrift:
        values = {f.name: data[f.name] for f in fields(cls)}
        values["columns"] = [ColumnDrift.from_dict(c) for c in data["columns"]]
        return cls(**values)

    @property
    def missing_shares(self) -> dict[str, dict[str, float]]:
        return {
            c.column: {"reference": c.missing_share_reference, "current": c.missing_share_current}
            for c in self.columns
        }


@dataclass(frozen=True)
class PredictionDrift:
    """Drift of the predicted probabilities and labels, with their summary figures."""

    status: Status
    rows: int
    probability: ColumnDrift | None
    label: ColumnDrift | None
    mean_probability_reference: float | None
    mean_probability_current: float | None
    positive_rate_reference: float | None
    positive_rate_current: float | None

    @property
    def drifted(self) -> bool:
        return any(c is not None and c.drifted for c in (self.probability, self.label))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["drifted"] = self.drifted
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PredictionDrift:
        values = {f.name: data[f.name] for f in fields(cls)}
        for name in ("probability", "label"):
            if values[name] is not None:
                values[name] = ColumnDrift.from_dict(values[name])
        return cls(**values)


@dataclass(frozen=True)
class DriftResult:
    data: DataDrift
    prediction: PredictionDrift
    html: str | None  # Evidently's self-contained report; None when nothing was tested


def predictions_frame(x: pd.DataFrame, labels: Any, proba: Any) -> pd.DataFrame:
    """The 13 features with a model's `label` and `probability`, as serving logs them."""
    return x[list(SPEC.feature_names)].assign(
        **{LABEL: np.asarray(labels).astype(int), PROBABILITY: np.asarray(proba, dtype=float)}
    )


def with_predictions(model: Any, rows: pd.DataFrame) -> pd.DataFrame:
    """The rows' 13 features with the model's `label` and `probability`."""
    from mlplatform.evaluation import Predictions  # sklearn: loaded on use (DAG files import this)

    x = rows[list(SPEC.feature_names)]
    predicted = Predictions.of(model, x)
    return predictions_frame(x, predicted.labels, predicted.proba)


def reference_frame(model: Any, train: pd.DataFrame, folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """The champion's reference: its training split's features and its predictions on them.

    The predictions are out-of-fold (the champion's configuration refitted on the other folds):
    in-sample predictions of a flexible model are overconfident, and new in-distribution
    patients would then look like prediction drift (a random forest's probabilities on the 68
    held-out Cleveland patients differ from its in-sample ones at p = 0.004). `folds=0`: in-sample.
    Training logs the same frame with the model (`REFERENCE_ARTIFACT`), from the out-of-fold
    predictions it already made, with its own folds and seed: this is for versions without it.
    """
    if folds < 2:
        return with_predictions(model, train)
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    from mlplatform.evaluation import Predictions

    x, y = train[list(SPEC.feature_names)], train[SPEC.target].astype(int)
    labels, proba = np.zeros(len(x), dtype=int), np.zeros(len(x))
    # One fit per fold gives both columns (cross_val_predict twice fitted every fold twice).
    for fit_rows, held_out in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        fold_model = clone(model).fit(x.iloc[fit_rows], y.iloc[fit_rows])
        predicted = Predictions.of(fold_model, x.iloc[held_out])
        labels[held_out], proba[held_out] = predicted.labels, predicted.proba
    return predictions_frame(x, labels, proba)


def _share(values: pd.Series) -> float:
    return round(float(values.isna().mean()), 4) if len(values) else 0.0


def _mean(values: pd.Series) -> float | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return round(float(values.mean()), 4) if len(values) else None


@contextmanager
def _quiet() -> Iterator[None]:
    """Keep Evidently's noise out of task logs: import-time deprecations, divide-by-zero
    warnings on empty statistics, INFO logging."""
    logging.getLogger("evidently").setLevel(logging.WARNING)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def _run_evidently(current: pd.DataFrame, reference: pd.DataFrame, drift_share: float) -> Any:
    """One report: the drift preset over the features, ValueDrift over the prediction columns.
    Column types come from the SPEC."""
    with _quiet():
        from evidently import DataDefinition, Dataset, Report
        from evidently.metrics import ValueDrift
        from evidently.presets import DataDriftPreset

        features = [c for c in SPEC.feature_names if c in current.columns]
        numeric = [c for c in current.columns if c in SPEC.numeric_names or c == PROBABILITY]
        categorical = [c for c in current.columns if c in SPEC.categorical_names or c == LABEL]
        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
        metrics: list[Any] = [DataDriftPreset(columns=features, drift_share=drift_share)]
        metrics += [ValueDrift(column=c) for c in PREDICTION_COLUMNS if c in current.columns]
        return Report(metrics, include_tests=True).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )


def _column_results(snapshot: Any) -> dict[str, tuple[str, float, float, bool]]:
    """column -> (method, score, threshold, drifted), from the ValueDrift metrics and tests."""
    report = snapshot.dict()
    failed = {
        t["metric_config"]["metric_id"]: t["status"] == "FAIL"
        for t in report["tests"]
        if t["metric_config"]["params"].get("type", "").endswith(":ValueDrift")
    }
    results = {}
    for metric in report["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith(":ValueDrift"):
            results[config["column"]] = (
                str(config["method"]),
                float(metric["value"]),
                float(config["threshold"]),
                failed[metric["id"]],
            )
    return results


def _html(snapshot: Any) -> str:
    with tempfile.TemporaryDirectory() as folder, _quiet():
        path = Path(folder) / "report.html"
        snapshot.save_html(str(path))
        return path.read_text(encoding="utf-8")


def compute_drift(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    min_rows: int,
    drift_share_threshold: float,
    html: bool = True,
) -> DriftResult:
    """Feature drift and prediction drift of `current` against `reference`.

    Both frames hold the 13 features; prediction drift is computed when both also hold
    `label` and `probability`. Below `min_rows` window rows nothing is tested: the result says
    insufficient_data. `drift_share_threshold` only sets the verdict shown in the HTML report.
    """
    features = list(SPEC.feature_names)
    missing = [c for c in features if c not in current.columns or c not in reference.columns]
    if missing:
        raise ValueError(f"the window and the reference need every feature; missing: {missing}")
    if reference.empty:
        raise ValueError("the reference is empty: is the champion's training split loaded?")
    with_predictions = all(c in current and c in reference for c in PREDICTION_COLUMNS)
    pred_cols = list(PREDICTION_COLUMNS) if with_predictions else []
    rows = len(current)

    def numbers(df: pd.DataFrame) -> pd.DataFrame:  # positional: a resampled window repeats labels
        return df[features + pred_cols].apply(pd.to_numeric, errors="coerce").astype(float)

    cur, ref = numbers(current).reset_index(drop=True), numbers(reference).reset_index(drop=True)
    empty_current = [c for c in features if cur[c].isna().all()]
    empty_reference = [c for c in features if ref[c].isna().all()]
    testable = [c for c in features if c not in empty_current and c not in empty_reference]
    enough = rows >= min_rows
    results: dict[str, tuple[str, float, float, bool]] = {}
    report_html = None
    if enough and testable + pred_cols:
        run_on = testable + pred_cols
        snapshot = _run_evidently(cur[run_on], ref[run_on], drift_share_threshold)
        results = _column_results(snapshot)
        report_html = _html(snapshot) if html else None

    def column(name: str, cur_values: pd.Series, ref_values: pd.Series) -> ColumnDrift:
        shares = {
            "missing_share_reference": _share(ref_values),
            "missing_share_current": _share(cur_values),
        }
        if name in empty_reference:
            return ColumnDrift(name, EMPTY_IN_REFERENCE, None, None, None, **shares)
        if not enough:
            return ColumnDrift(name, "not tested", None, None, None, **shares)
        if name in empty_current:
            return ColumnDrift(name, EMPTY_IN_WINDOW, 1.0, None, True, **shares)
        method, score, threshold, drifted = results[name]
        return ColumnDrift(name, method, score, threshold, drifted, **shares)

    columns = [column(c, cur[c], ref[c]) for c in features]
    drifted = [c.column for c in columns if c.drifted]
    tested = sum(c.drifted is not None for c in columns)
    data = DataDrift(
        status=OK if enough else INSUFFICIENT_DATA,
        rows=rows,
        reference_rows=len(reference),
        drift_share=round(len(drifted) / tested, 4) if enough and tested else None,
        drifted_features=drifted,
        tested_features=tested,
        columns=columns,
    )
    judged = enough and with_predictions
    prediction = PredictionDrift(
        status=OK if judged else INSUFFICIENT_DATA,
        rows=rows,
        probability=column(PROBABILITY, cur[PROBABILITY], ref[PROBABILITY]) if judged else None,
        label=column(LABEL, cur[LABEL], ref[LABEL]) if judged else None,
        mean_probability_reference=_mean(ref[PROBABILITY]) if with_predictions else None,
        mean_probability_current=_mean(cur[PROBABILITY]) if with_predictions else None,
        positive_rate_reference=_mean(ref[LABEL]) if with_predictions else None,
        positive_rate_current=_mean(cur[LABEL]) if with_predictions else None,
    )
    return DriftResult(data, prediction, report_html)
