"""Hyperparameter search, refit and registration of the model, tracked in MLflow.

An Optuna study (TPE, seeded) picks a model family and its hyperparameters from the spec's
search space, scoring each trial by stratified K-fold cross-validation on the training split.
The metric optimised is the spec's `optimise_metric` (F1); the others in `report_metrics` are
reported. Each trial is a nested MLflow run under one parent run. The best configuration is
refit on the whole training split and evaluated once on the test split. The model is one
sklearn Pipeline (mlplatform.features) with all preprocessing inside.

Over 300 lines on purpose: it is one thing, a model's way from search to registration (the
pure fitting and scoring first, then the tracked steps the DAGs call), and the retraining
reuses both halves. The statistics live in `evaluation`, calibration in `calibration`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlplatform.dataset import DatasetSpec, Param
from mlplatform.features import build_pipeline
from mlplatform.records import Record
from mlplatform.settings import Settings
from mlplatform.spec import SPEC

if TYPE_CHECKING:
    import optuna
    from sklearn.pipeline import Pipeline

    from mlplatform.store import DatasetMetadata, DataStore

TrialCallback = Callable[[int, str, dict[str, Any], dict[str, float]], None]


def _classifiers() -> dict[str, Callable[[dict[str, Any], int], Any]]:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    return {
        "logistic_regression": lambda p, seed: LogisticRegression(
            max_iter=5000, random_state=seed, **p
        ),
        # probability=True (deprecated in sklearn 1.9, kept until 1.11): one estimator that
        # skops can store, instead of a CalibratedClassifierCV wrapper.
        "svm": lambda p, seed: SVC(kernel="rbf", probability=True, random_state=seed, **p),
        "random_forest": lambda p, seed: RandomForestClassifier(random_state=seed, n_jobs=1, **p),
        "gradient_boosting": lambda p, seed: HistGradientBoostingClassifier(random_state=seed, **p),
    }


@dataclass(frozen=True)
class Candidate:
    """A configuration and its cross-validated scores (`cv_<metric>` means and stds)."""

    family: str
    params: dict[str, Any]
    cv: dict[str, float]


@dataclass(frozen=True)
class RunConfiguration(Record):
    """A model configuration chosen in an MLflow run on a dataset version."""

    run_id: str
    dataset_version: str
    family: str
    params: dict[str, Any]


@dataclass(frozen=True)
class SearchResult(RunConfiguration):
    """What the search hands to the refit: the parent run, the best configuration, its CV."""

    cv: dict[str, float]


@dataclass(frozen=True)
class TrainedModel(RunConfiguration):
    """A refit, tested and logged model: the hand-off to registration. `metrics` holds the
    test metrics with their 95% bootstrap bounds (`test_f1_ci_low`, `test_f1_ci_high`)."""

    metrics: dict[str, float]
    model_uri: str
    threshold: float = 0.5
    calibration: str = "none"
    threshold_policy: str = ""
    by_source: list[dict[str, Any]] = field(default_factory=list)  # test metrics per hospital


# A search option of every family: one 0/1 column per feature that had gaps in training.
MISSING_INDICATORS = "missing_indicators"
# Every reported test metric gets a bootstrap interval at this level.
REPORT_CONFIDENCE = 0.95
REPORT_RESAMPLES = 2000
CALIBRATION_METRIC_NAMES = ("brier", "log_loss", "ece")


def make_pipeline(
    family: str, params: dict[str, Any], seed: int, spec: DatasetSpec = SPEC
) -> Pipeline:
    model_params = {k: v for k, v in params.items() if k != MISSING_INDICATORS}
    indicators = bool(params.get(MISSING_INDICATORS, False))
    return build_pipeline(_classifiers()[family](model_params, seed), spec, indicators)


def _suggest(trial: optuna.Trial, name: str, p: Param) -> Any:
    if p.kind == "int":
        return trial.suggest_int(name, int(p.low), int(p.high), log=p.log)
    if p.kind == "float":
        return trial.suggest_float(name, p.low, p.high, log=p.log)
    return trial.suggest_categorical(name, list(p.choices))  # type: ignore[arg-type]


def suggest(trial: optuna.Trial, spec: DatasetSpec = SPEC) -> tuple[str, dict[str, Any]]:
    """A model family and its hyperparameters from the spec's search space."""
    family = str(trial.suggest_categorical("family", list(spec.search_space)))
    params = {
        name: _suggest(trial, f"{family}.{name}", p)
        for name, p in spec.search_space[family].items()
    }
    params[MISSING_INDICATORS] = bool(trial.suggest_categorical(MISSING_INDICATORS, [False, True]))
    return family, params


def split_xy(df: pd.DataFrame, spec: DatasetSpec = SPEC) -> tuple[pd.DataFrame, pd.Series]:
    return df[list(spec.feature_names)], df[spec.target]


def cross_validate(
    family: str,
    params: dict[str, Any],
    train: pd.DataFrame,
    seed: int,
    folds: int,
    spec: DatasetSpec = SPEC,
) -> dict[str, float]:
    from sklearn.model_selection import StratifiedKFold
    from sklearn.model_selection import cross_validate as sk_cross_validate

    x, y = split_xy(train, spec)
    scores = sk_cross_validate(
        make_pipeline(family, params, seed, spec),
        x,
        y,
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        scoring=list(spec.report_metrics),
        n_jobs=1,
    )
    result = {}
    for metric in spec.report_metrics:
        result[f"cv_{metric}"] = float(np.mean(scores[f"test_{metric}"]))
        result[f"cv_{metric}_std"] = float(np.std(scores[f"test_{metric}"]))
    return result


# The user attribute of every trial that holds its family, hyperparameters and CV scores, so a
# best trial read back from a shared storage is refit exactly as it was scored.
CANDIDATE = "candidate"


def quiet_search() -> None:
    """Optuna's per-trial log lines and the expected sklearn warnings off."""
    import warnings

    import optuna
    from sklearn.exceptions import UndefinedMetricWarning

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A trial predicting one class has undefined precision (scored 0): expected, not news.
    warnings.filterwarnings("ignore", category=UndefinedMetricWarning)
    warnings.filterwarnings("ignore", message=".*probability.*deprecated", category=FutureWarning)


def objective(
    train: pd.DataFrame,
    seed: int,
    folds: int,
    on_trial: TrialCallback | None = None,
    spec: DatasetSpec = SPEC,
    **attrs: Any,
) -> Callable[[optuna.Trial], float]:
    """The study's objective: CV score of the spec's optimise_metric. Each trial keeps its
    candidate (and `attrs`, e.g. the worker) as user attributes."""

    def score(trial: optuna.Trial) -> float:
        family, params = suggest(trial, spec)
        cv = cross_validate(family, params, train, seed, folds, spec)
        trial.set_user_attr(CANDIDATE, {"family": family, "params": params, "cv": cv})
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        if on_trial is not None:
            on_trial(trial.number, family, params, cv)
        return cv[f"cv_{spec.optimise_metric}"]

    return score


def candidate_of(trial: optuna.trial.FrozenTrial) -> Candidate:
    return Candidate(**trial.user_attrs[CANDIDATE])


def search(
    train: pd.DataFrame,
    n_trials: int,
    seed: int,
    folds: int,
    on_trial: TrialCallback | None = None,
    spec: DatasetSpec = SPEC,
) -> Candidate:
    """In-process Optuna study (seeded TPE) maximising the CV score of the spec's
    optimise_metric; returns the best. Deterministic for a given seed."""
    import optuna

    quiet_search()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective(train, seed, folds, on_trial, spec), n_trials=n_trials)
    return candidate_of(study.best_trial)


def evaluate(pipeline: Pipeline, test: pd.DataFrame, spec: DatasetSpec = SPEC) -> dict[str, float]:
    """Test metrics (prefixed `test_`) of a fitted pipeline: labels from its `predict` (its
    own threshold), probabilities from `predict_proba`."""
    from mlplatform.evaluation import Predictions, get_metric

    x, y = split_xy(test, spec)
    predictions = Predictions.of(pipeline, x)
    y = np.asarray(y).astype(int)
    return {
        f"test_{m}": get_metric(m).score(y, predictions.values(get_metric(m)))
        for m in spec.report_metrics
    }


@dataclass(frozen=True)
class Assessment:
    """One model on one labelled split: metrics with bootstrap intervals (stratified by
    source), calibration, and the same metrics per source."""

    intervals: dict[str, Any]  # metric -> evaluation.Interval
    calibration: dict[str, float]
    by_source: list[Any]  # evaluation.SourceMetrics

    def metrics(self, prefix: str = "test_") -> dict[str, float]:
        """Flat MLflow metrics: `test_f1`, `test_f1_ci_low`, `test_f1_ci_high`, ...,
        `test_ece`, and per source `test_f1__cleveland`."""
        out: dict[str, float] = {}
        for name, interval in self.intervals.items():
            out[f"{prefix}{name}"] = interval.estimate
            out[f"{prefix}{name}_ci_low"] = interval.low
            out[f"{prefix}{name}_ci_high"] = interval.high
        out.update({f"{prefix}{k}": v for k, v in self.calibration.items() if k == "ece"})
        return {k: float(v) for k, v in out.items() if not np.isnan(v)}

    def to_dict(self) -> dict[str, Any]:
        from mlplatform.evaluation import intervals_to_dict

        return {
            "intervals": intervals_to_dict(self.intervals),
            "calibration": self.calibration,
            "by_source": [s.to_dict() for s in self.by_source],
        }


def assess(
    y: Any, labels: Any, proba: Any, sources: Any, seed: int, spec: DatasetSpec = SPEC
) -> Assessment:
    from mlplatform.evaluation import calibration_metrics, metric_intervals, metrics_by_source

    metrics = [*spec.report_metrics, "brier", "log_loss"]
    return Assessment(
        metric_intervals(
            y, labels, proba, sources, metrics, REPORT_CONFIDENCE, REPORT_RESAMPLES, seed
        ),
        calibration_metrics(y, proba),
        metrics_by_source(y, labels, proba, sources, [*spec.report_metrics, "brier"]),
    )


def sources_of(frame: pd.DataFrame) -> Any:
    """The hospital of each row (one group when the frame was loaded without ids)."""
    from mlplatform.store import SOURCE

    return frame[SOURCE].to_numpy() if SOURCE in frame else np.full(len(frame), "unknown")


@dataclass(frozen=True)
class DecisionModel:
    """A fitted model with its calibration and threshold inside, and how they were chosen."""

    pipeline: Pipeline
    calibration: Any  # calibration.CalibrationChoice
    threshold: float
    policy: str
    oof_proba: Any  # out-of-fold P(positive) of the chosen calibration, on the training split


def fit_decision_model(
    family: str,
    params: dict[str, Any],
    train: pd.DataFrame,
    seed: int,
    folds: int,
    policy: str,
    spec: DatasetSpec = SPEC,
) -> DecisionModel:
    """Calibration chosen by out-of-fold Brier score, the threshold for `policy` on the same
    out-of-fold probabilities, then the final model fitted on the whole training split."""
    from mlplatform.calibration import choose_calibration, choose_threshold, decision_pipeline

    x, y = split_xy(train, spec)
    factory = lambda: make_pipeline(family, params, seed, spec)  # noqa: E731
    choice, oof = choose_calibration(factory, x, y, seed, folds)
    threshold = choose_threshold(y, oof, policy)
    pipeline = decision_pipeline(factory(), choice.method, threshold, folds).fit(x, y)
    return DecisionModel(pipeline, choice, threshold, policy, oof)


def leave_one_source_out(
    model: DecisionModel, train: pd.DataFrame, spec: DatasetSpec = SPEC
) -> list[Any]:
    """Transportability: each hospital scored by the model (same configuration, calibration
    and threshold) fitted on the other hospitals. Empty with fewer than two hospitals."""
    from sklearn.base import clone
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict

    from mlplatform.evaluation import metrics_by_source

    sources = sources_of(train)
    if len(set(sources)) < 2:
        return []
    x, y = split_xy(train, spec)
    proba = cross_val_predict(
        clone(model.pipeline), x, y, groups=sources, cv=LeaveOneGroupOut(),
        method="predict_proba", n_jobs=1,
    )[:, 1]  # fmt: skip
    labels = (proba >= model.threshold).astype(int)
    return metrics_by_source(y, labels, proba, sources, [*spec.report_metrics, "brier"])


def fit(
    family: str, params: dict[str, Any], train: pd.DataFrame, seed: int, spec: DatasetSpec = SPEC
) -> Pipeline:
    x, y = split_xy(train, spec)
    return make_pipeline(family, params, seed, spec).fit(x, y)


def plots(
    pipeline: Pipeline, train: pd.DataFrame, test: pd.DataFrame, seed: int, spec: DatasetSpec
) -> dict[str, Any]:
    """ROC curve and confusion matrix on the test split; permutation feature importance on
    the training split (raw features, so it reads the same for every model family)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

    x, y = split_xy(test, spec)
    figures = {}
    fig, ax = plt.subplots(figsize=(5, 4))
    RocCurveDisplay.from_estimator(pipeline, x, y, ax=ax)
    ax.set_title("ROC curve (test split)")
    figures["roc_curve.png"] = fig
    fig, ax = plt.subplots(figsize=(5, 4))
    ConfusionMatrixDisplay.from_estimator(
        pipeline, x, y, ax=ax, display_labels=[spec.negative_label, spec.positive_label]
    )
    ax.set_title("Confusion matrix (test split)")
    figures["confusion_matrix.png"] = fig
    x_train, y_train = split_xy(train, spec)
    importance = permutation_importance(
        pipeline, x_train, y_train, scoring=spec.optimise_metric, n_repeats=5, random_state=seed
    )
    order = np.argsort(importance.importances_mean)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.barh(np.array(spec.feature_names)[order], importance.importances_mean[order])
    ax.set_xlabel(f"mean drop in {spec.optimise_metric} when shuffled")
    ax.set_title("Permutation feature importance (train split)")
    fig.tight_layout()
    figures["feature_importance.png"] = fig
    return figures


def input_example(train: pd.DataFrame, spec: DatasetSpec = SPEC) -> pd.DataFrame:
    x, _ = split_xy(train, spec)
    complete = x.dropna()
    return (complete if len(complete) else x).head(5)


def run_search(
    n_trials: int | None, store: DataStore, settings: Settings, spec: DatasetSpec = SPEC
) -> SearchResult:
    """Step 1 of training in one process (CLI, notebook): the in-process study under a new
    parent run on the current dataset version. The DAG runs the same steps as tasks
    (mlplatform.search), with SEARCH_WORKERS of them sharing one study."""
    from mlplatform.search import finish_search, plan_search, run_part

    (plan,) = plan_search(n_trials, 1, "", store, settings, spec)
    return finish_search([run_part(plan, store, settings, spec)], settings, spec)


@dataclass(frozen=True)
class Refit:
    """What `refit_and_log` hands back: the model, its test predictions and metrics."""

    model: DecisionModel
    test: Any  # evaluation.Predictions on the test split
    metrics: dict[str, float]
    uri: str
    by_source: list[dict[str, Any]]  # compact per-hospital test table (a version tag)


def _figure_by_source(rows: list[Any], metric: str, title: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    names = [f"{r.source} ({r.rows})" for r in rows]
    ax.barh(names, [r.metrics.get(metric, float("nan")) for r in rows])
    ax.set_xlabel(metric)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def refit_and_log(
    family: str,
    params: dict[str, Any],
    frames: dict[str, pd.DataFrame],
    settings: Settings,
    spec: DatasetSpec = SPEC,
    prefix: str = "",
    card: dict[str, Any] | None = None,
) -> Refit:
    """Refit on the whole training split (calibration and threshold chosen on out-of-fold
    predictions), evaluate once on test, and log to the active run: metrics with intervals,
    per-source tables (CV, test, leave-one-hospital-out), reliability plot, the model card
    and the model. `frames` should carry row ids and sources (load_splits(with_ids=True))."""
    import matplotlib.pyplot as plt
    import mlflow

    from mlplatform.calibration import reliability_figure
    from mlplatform.evaluation import Predictions, metrics_by_source
    from mlplatform.model_card import render_model_card
    from mlplatform.monitoring.drift import REFERENCE_ARTIFACT, predictions_frame
    from mlplatform.registry import log_frame, log_pipeline

    seed = settings.RANDOM_SEED
    train, test = frames["train"], frames["test"]
    model = fit_decision_model(
        family, params, train, seed, settings.CV_FOLDS, settings.THRESHOLD_POLICY, spec
    )
    x_test, y_test = split_xy(test, spec)
    predictions = Predictions.of(model.pipeline, x_test)
    tested = assess(y_test, predictions.labels, predictions.proba, sources_of(test), seed, spec)
    _, y_train = split_xy(train, spec)
    oof_labels = (model.oof_proba >= model.threshold).astype(int)
    cv_by_source = metrics_by_source(
        y_train, oof_labels, model.oof_proba, sources_of(train), [*spec.report_metrics, "brier"]
    )
    transport = leave_one_source_out(model, train, spec)
    metrics = {
        **tested.metrics(),
        **{f"cv_oof_{k}": v for k, v in model.calibration.scores[model.calibration.method].items()},
        "threshold": model.threshold,
    }
    mlflow.log_metrics({f"{prefix}{k}": v for k, v in metrics.items()})
    mlflow.log_params(
        {f"{prefix}calibration": model.calibration.method,
         f"{prefix}threshold_policy": model.policy}
    )  # fmt: skip
    report = {
        "family": family,
        "params": params,
        "threshold": model.threshold,
        "threshold_policy": model.policy,
        "calibration": model.calibration.to_dict(),
        "test": tested.to_dict(),
        "cv_by_source": [r.to_dict() for r in cv_by_source],
        "leave_one_source_out": [r.to_dict() for r in transport],
    }
    mlflow.log_dict(report, f"evaluation/{prefix}evaluation.json")
    # Monitoring's reference for this model: the out-of-fold predictions it was chosen on.
    log_frame(predictions_frame(train, oof_labels, model.oof_proba), REFERENCE_ARTIFACT)
    figures = plots(model.pipeline, train, test, seed, spec)
    figures["reliability.png"] = reliability_figure(y_test, {"test split": predictions.proba})
    if transport:
        figures["leave_one_source_out.png"] = _figure_by_source(
            transport, spec.optimise_metric, "Leave-one-hospital-out (train split)"
        )
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"plots/{prefix}{name}")
        plt.close(figure)
    mlflow.log_text(
        render_model_card(report, card or {}, spec, f"plots/{prefix}reliability.png"),
        f"{prefix}model_card.md",
    )
    uri = log_pipeline(model.pipeline, input_example(train, spec))
    return Refit(model, predictions, metrics, uri, compact_by_source(tested.by_source))


def compact_by_source(rows: list[Any]) -> list[dict[str, Any]]:
    """The per-hospital table in few characters (a version tag holds at most 5,000)."""
    return [
        {
            "source": r.source,
            "rows": r.rows,
            "positives": r.positives,
            "mean_proba": round(r.mean_proba, 3),
            **{k: None if v != v else round(v, 3) for k, v in r.metrics.items()},
        }
        for r in rows
    ]


def version_tags(model: TrainedModel, kind: str, spec: DatasetSpec = SPEC) -> dict[str, Any]:
    """The tags every model version carries (serving and lineage read them)."""
    from mlplatform.tracking import git_commit

    return {
        "dataset_version": model.dataset_version,
        "git_commit": git_commit(),
        "model_family": model.family,
        "params": json.dumps(model.params, sort_keys=True),
        "trained_by": kind,
        "optimise_metric": spec.optimise_metric,
        "calibration": model.calibration,
        "threshold_policy": model.threshold_policy,
        "by_source": json.dumps(model.by_source, sort_keys=True),
        **{k: round(v, 4) for k, v in model.metrics.items()},
        # Exact, after the rounded metrics: /model and the lineage show the model's own value.
        "threshold": model.threshold,
    }


def refit(
    found: SearchResult, store: DataStore, settings: Settings, spec: DatasetSpec = SPEC
) -> TrainedModel:
    """Step 2 of training: refit the best configuration on the version that was searched,
    test it, log the model to the search's parent run."""
    import mlflow

    from mlplatform.registry import configure

    metadata: DatasetMetadata = store.read_version(found.dataset_version)
    frames = store.load_splits(metadata, spec, with_ids=True)
    configure(settings)
    with mlflow.start_run(run_id=found.run_id):
        done = refit_and_log(
            found.family, found.params, frames, settings, spec, card=card_context(metadata)
        )
    return trained(found, done)


def card_context(metadata: DatasetMetadata) -> dict[str, Any]:
    """What the model card says about the data: version, deliveries, row counts."""
    return {
        "dataset_version": metadata.dataset_version,
        "deliveries": metadata.deliveries,
        "counts": metadata.counts,
    }


def trained(config: RunConfiguration, done: Refit) -> TrainedModel:
    return TrainedModel(
        config.run_id, config.dataset_version, config.family, config.params, done.metrics,
        done.uri, done.model.threshold, done.model.calibration.method, done.model.policy,
        done.by_source,
    )  # fmt: skip


def register_model(model: TrainedModel, kind: str, settings: Settings) -> str:
    """Register the logged model once, with its tags (a retried task finds its version)."""
    from mlplatform.registry import register

    version = register(model.model_uri, model.run_id, version_tags(model, kind), settings)
    return str(version.version)


def register_and_promote_first(model: TrainedModel, settings: Settings) -> dict[str, Any]:
    """Step 3 of training: register; the very first model becomes the champion."""
    from mlplatform.registry import get_champion, promote

    version = register_model(model, "training", settings)
    champion = get_champion(settings)
    if champion is None:
        promote(version, settings)
        champion_version = version
    else:
        champion_version = str(champion.version)
    return {"version": version, "champion": champion_version, "metrics": model.metrics}


def train(n_trials: int | None, store: DataStore, settings: Settings) -> dict[str, Any]:
    """The whole training in one call (CLI, notebook); the DAG runs the three steps."""
    return register_and_promote_first(
        refit(run_search(n_trials, store, settings), store, settings), settings
    )
