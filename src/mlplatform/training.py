"""Hyperparameter search, refit and registration of the model, tracked in MLflow.

An Optuna study (TPE, seeded) picks a model family and its hyperparameters from the spec's
search space, scoring each trial by stratified K-fold cross-validation on the training split.
The metric optimised is the spec's `optimise_metric` (F1); the others in `report_metrics` are
reported. Each trial is a nested MLflow run under one parent run. The best configuration is
refit on the whole training split and evaluated once on the test split. The model is one
sklearn Pipeline (mlplatform.features) with all preprocessing inside.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
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
    """A refit, tested and logged model: the hand-off to registration."""

    metrics: dict[str, float]
    model_uri: str


def make_pipeline(
    family: str, params: dict[str, Any], seed: int, spec: DatasetSpec = SPEC
) -> Pipeline:
    return build_pipeline(_classifiers()[family](params, seed), spec)


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


def search(
    train: pd.DataFrame,
    n_trials: int,
    seed: int,
    folds: int,
    on_trial: TrialCallback | None = None,
    spec: DatasetSpec = SPEC,
) -> Candidate:
    """Optuna study maximising the CV score of the spec's optimise_metric; returns the best."""
    import warnings

    import optuna
    from sklearn.exceptions import UndefinedMetricWarning

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A trial predicting one class has undefined precision (scored 0): expected, not news.
    warnings.filterwarnings("ignore", category=UndefinedMetricWarning)
    warnings.filterwarnings("ignore", message=".*probability.*deprecated", category=FutureWarning)
    results: dict[int, Candidate] = {}

    def objective(trial: optuna.Trial) -> float:
        family, params = suggest(trial, spec)
        cv = cross_validate(family, params, train, seed, folds, spec)
        results[trial.number] = Candidate(family, params, cv)
        if on_trial is not None:
            on_trial(trial.number, family, params, cv)
        return cv[f"cv_{spec.optimise_metric}"]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    return results[study.best_trial.number]


def evaluate(pipeline: Pipeline, test: pd.DataFrame, spec: DatasetSpec = SPEC) -> dict[str, float]:
    """Test metrics (prefixed `test_`) of a fitted pipeline."""
    from sklearn.metrics import get_scorer

    x, y = split_xy(test, spec)
    return {f"test_{m}": float(get_scorer(m)(pipeline, x, y)) for m in spec.report_metrics}


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
    """Step 1 of training: the study under a new parent run on the current dataset version."""
    import mlflow

    from mlplatform.tracking import log_inputs, log_trial, start_parent_run

    n_trials = n_trials or settings.N_TRIALS
    metadata = store.current()
    frames = store.load_splits(metadata, spec)
    with start_parent_run("training", metadata, settings) as run:
        log_inputs(metadata, frames, spec)
        mlflow.log_params(
            {
                "n_trials": n_trials,
                "cv_folds": settings.CV_FOLDS,
                "seed": settings.RANDOM_SEED,
                "optimise_metric": spec.optimise_metric,
                "dataset_version": metadata.dataset_version,
            }
        )
        best = search(
            frames["train"], n_trials, settings.RANDOM_SEED, settings.CV_FOLDS, log_trial, spec
        )
        mlflow.log_params(
            {"best_family": best.family, **{f"best.{k}": v for k, v in best.params.items()}}
        )
        mlflow.log_metrics({f"best_{k}": v for k, v in best.cv.items()})
    return SearchResult(
        run.info.run_id, metadata.dataset_version, best.family, best.params, best.cv
    )


def refit_and_log(
    family: str,
    params: dict[str, Any],
    frames: dict[str, pd.DataFrame],
    seed: int,
    spec: DatasetSpec = SPEC,
    prefix: str = "",
) -> tuple[Pipeline, dict[str, float], str]:
    """Refit on the whole training split, evaluate once on test, log plots and the model to
    the active run. Returns (pipeline, test metrics, model URI)."""
    import matplotlib.pyplot as plt
    import mlflow

    from mlplatform.registry import log_pipeline

    train, test = frames["train"], frames["test"]
    pipeline = fit(family, params, train, seed, spec)
    metrics = evaluate(pipeline, test, spec)
    mlflow.log_metrics({f"{prefix}{k}": v for k, v in metrics.items()})
    for name, figure in plots(pipeline, train, test, seed, spec).items():
        mlflow.log_figure(figure, f"plots/{prefix}{name}")
        plt.close(figure)
    uri = log_pipeline(pipeline, input_example(train, spec))
    return pipeline, metrics, uri


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
        **{k: round(v, 4) for k, v in model.metrics.items()},
    }


def refit(
    found: SearchResult, store: DataStore, settings: Settings, spec: DatasetSpec = SPEC
) -> TrainedModel:
    """Step 2 of training: refit the best configuration on the version that was searched,
    test it, log the model to the search's parent run."""
    import mlflow

    from mlplatform.registry import configure

    metadata: DatasetMetadata = store.read_version(found.dataset_version)
    frames = store.load_splits(metadata, spec)
    configure(settings)
    with mlflow.start_run(run_id=found.run_id):
        _, metrics, uri = refit_and_log(
            found.family, found.params, frames, settings.RANDOM_SEED, spec
        )
    return TrainedModel(
        found.run_id, found.dataset_version, found.family, found.params, metrics, uri
    )


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
