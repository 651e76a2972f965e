"""Hyperparameter search, refit and registration of the model, tracked in MLflow.

An Optuna study (TPE, seeded) picks a model family and its hyperparameters from
`SPEC.search_space`, scoring each trial by stratified K-fold cross-validation on the
training split. The metric optimised is `SPEC.optimise_metric` (F1); ROC AUC and the
others in `SPEC.report_metrics` are reported. Each trial is a nested MLflow run under
one parent run. The best configuration is refit on the whole training split and
evaluated once on the test split. The model is one sklearn Pipeline
(mlplatform.features) with all preprocessing inside.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlplatform.dataset import SPEC
from mlplatform.features import build_pipeline
from mlplatform.heart_disease import Param
from mlplatform.settings import REPO_ROOT, Settings, get_settings

if TYPE_CHECKING:
    import optuna
    from sklearn.pipeline import Pipeline


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
    family: str
    params: dict[str, Any]
    cv: dict[str, float]  # cv_<metric> means


def make_pipeline(family: str, params: dict[str, Any], seed: int) -> Pipeline:
    return build_pipeline(_classifiers()[family](params, seed))


def _suggest(trial: optuna.Trial, name: str, p: Param) -> Any:
    if p.kind == "int":
        return trial.suggest_int(name, int(p.low), int(p.high), log=p.log)
    if p.kind == "float":
        return trial.suggest_float(name, p.low, p.high, log=p.log)
    return trial.suggest_categorical(name, list(p.choices))  # type: ignore[arg-type]


def suggest(trial: optuna.Trial) -> tuple[str, dict[str, Any]]:
    """A model family and its hyperparameters from the SPEC's search space."""
    family = trial.suggest_categorical("family", list(SPEC.search_space))
    params = {
        name: _suggest(trial, f"{family}.{name}", p)
        for name, p in SPEC.search_space[str(family)].items()
    }
    return str(family), params


def split_xy(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    return df[list(SPEC.feature_names)], df[SPEC.target]


def cross_validate(
    family: str, params: dict[str, Any], train: pd.DataFrame, seed: int, folds: int
) -> dict[str, float]:
    from sklearn.model_selection import StratifiedKFold
    from sklearn.model_selection import cross_validate as sk_cross_validate

    x, y = split_xy(train)
    scores = sk_cross_validate(
        make_pipeline(family, params, seed),
        x,
        y,
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        scoring=list(SPEC.report_metrics),
        n_jobs=1,
    )
    result = {}
    for metric in SPEC.report_metrics:
        result[f"cv_{metric}"] = float(np.mean(scores[f"test_{metric}"]))
        result[f"cv_{metric}_std"] = float(np.std(scores[f"test_{metric}"]))
    return result


def search(
    train: pd.DataFrame,
    n_trials: int,
    seed: int,
    folds: int,
    on_trial: Callable[[int, str, dict[str, Any], dict[str, float]], None] | None = None,
) -> Candidate:
    """Optuna study maximising the CV score of SPEC.optimise_metric; returns the best."""
    import warnings

    import optuna
    from sklearn.exceptions import UndefinedMetricWarning

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A trial predicting one class has undefined precision (scored 0): expected, not news.
    warnings.filterwarnings("ignore", category=UndefinedMetricWarning)
    warnings.filterwarnings("ignore", message=".*probability.*deprecated", category=FutureWarning)
    results: dict[int, Candidate] = {}

    def objective(trial: optuna.Trial) -> float:
        family, params = suggest(trial)
        cv = cross_validate(family, params, train, seed, folds)
        results[trial.number] = Candidate(family, params, cv)
        if on_trial is not None:
            on_trial(trial.number, family, params, cv)
        return cv[f"cv_{SPEC.optimise_metric}"]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    return results[study.best_trial.number]


def evaluate(pipeline: Pipeline, test: pd.DataFrame) -> dict[str, float]:
    """Test metrics (prefixed `test_`) of a fitted pipeline."""
    from sklearn.metrics import get_scorer

    x, y = split_xy(test)
    return {f"test_{m}": float(get_scorer(m)(pipeline, x, y)) for m in SPEC.report_metrics}


def fit(family: str, params: dict[str, Any], train: pd.DataFrame, seed: int) -> Pipeline:
    x, y = split_xy(train)
    return make_pipeline(family, params, seed).fit(x, y)


def plots(pipeline: Pipeline, train: pd.DataFrame, test: pd.DataFrame, seed: int) -> dict[str, Any]:
    """ROC curve and confusion matrix on the test split; permutation feature importance on
    the training split (raw features, so it reads the same for every model family)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

    x, y = split_xy(test)
    figures = {}
    fig, ax = plt.subplots(figsize=(5, 4))
    RocCurveDisplay.from_estimator(pipeline, x, y, ax=ax)
    ax.set_title("ROC curve (test split)")
    figures["roc_curve.png"] = fig
    fig, ax = plt.subplots(figsize=(5, 4))
    ConfusionMatrixDisplay.from_estimator(
        pipeline, x, y, ax=ax, display_labels=[SPEC.negative_label, SPEC.positive_label]
    )
    ax.set_title("Confusion matrix (test split)")
    figures["confusion_matrix.png"] = fig
    x_train, y_train = split_xy(train)
    importance = permutation_importance(
        pipeline, x_train, y_train, scoring=SPEC.optimise_metric, n_repeats=5, random_state=seed
    )
    order = np.argsort(importance.importances_mean)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.barh(np.array(SPEC.feature_names)[order], importance.importances_mean[order])
    ax.set_xlabel(f"mean drop in {SPEC.optimise_metric} when shuffled")
    ax.set_title("Permutation feature importance (train split)")
    fig.tight_layout()
    figures["feature_importance.png"] = fig
    return figures


def git_commit() -> str:
    """The code's commit (`+dirty` with uncommitted changes), or GIT_COMMIT from the env."""
    import os

    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        run = lambda *a: subprocess.run(  # noqa: E731
            ["git", *a], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        commit = run("rev-parse", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def input_example(train: pd.DataFrame) -> pd.DataFrame:
    x, _ = split_xy(train)
    complete = x.dropna()
    return (complete if len(complete) else x).head(5)


def log_trial(number: int, family: str, params: dict[str, Any], cv: dict[str, float]) -> None:
    """One nested MLflow run per trial, under the active parent run."""
    import mlflow

    with mlflow.start_run(run_name=f"trial {number:03d} {family}", nested=True):
        mlflow.set_tag("mlplatform.kind", "trial")
        mlflow.log_params({"family": family, **params})
        mlflow.log_metrics(cv)


def start_parent_run(kind: str, manifest: dict[str, Any], settings: Settings, **tags: str) -> Any:
    import mlflow

    from mlplatform.registry import configure

    configure(settings)
    mlflow.set_experiment(settings.MLFLOW_EXPERIMENT_NAME)
    version = manifest["dataset_version"]
    return mlflow.start_run(
        run_name=f"{kind} {version}",
        tags={
            "mlplatform.kind": kind,
            "dataset_version": version,
            "git_commit": git_commit(),
            **tags,
        },
    )


def run_search(n_trials: int | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Step 1 of training: the study under a new parent run. Returns what the refit needs."""
    import mlflow

    from mlplatform.etl import load_split, log_inputs, read_manifest

    s = settings or get_settings()
    n_trials = n_trials or s.N_TRIALS
    manifest = read_manifest(s)
    if manifest is None:
        raise FileNotFoundError("no dataset version is published yet: run the ETL DAG first")
    frames = {name: load_split(name, manifest, s) for name in ("train", "test")}
    with start_parent_run("training", manifest, s) as run:
        log_inputs(manifest, frames)
        mlflow.log_params(
            {
                "n_trials": n_trials,
                "cv_folds": s.CV_FOLDS,
                "seed": s.RANDOM_SEED,
                "optimise_metric": SPEC.optimise_metric,
                "dataset_version": manifest["dataset_version"],
            }
        )
        best = search(frames["train"], n_trials, s.RANDOM_SEED, s.CV_FOLDS, on_trial=log_trial)
        mlflow.log_params(
            {"best_family": best.family, **{f"best.{k}": v for k, v in best.params.items()}}
        )
        mlflow.log_metrics({f"best_{k}": v for k, v in best.cv.items()})
    return {
        "run_id": run.info.run_id,
        "dataset_version": manifest["dataset_version"],
        "family": best.family,
        "params": best.params,
        "cv": best.cv,
    }


def refit_and_log(
    family: str,
    params: dict[str, Any],
    manifest: dict[str, Any],
    settings: Settings,
    prefix: str = "",
) -> tuple[Pipeline, dict[str, float], str]:
    """Refit on the whole training split, evaluate once on test, log plots and the model to
    the active run. Returns (pipeline, test metrics, model URI)."""
    import matplotlib.pyplot as plt
    import mlflow

    from mlplatform.etl import load_split
    from mlplatform.registry import log_pipeline

    train, test = (load_split(name, manifest, settings) for name in ("train", "test"))
    pipeline = fit(family, params, train, settings.RANDOM_SEED)
    metrics = evaluate(pipeline, test)
    mlflow.log_metrics({f"{prefix}{k}": v for k, v in metrics.items()})
    for name, figure in plots(pipeline, train, test, settings.RANDOM_SEED).items():
        mlflow.log_figure(figure, f"plots/{prefix}{name}")
        plt.close(figure)
    info = log_pipeline(pipeline, input_example(train))
    return pipeline, metrics, info.model_uri


def version_tags(
    family: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    run_id: str,
    dataset_version: str,
    kind: str,
) -> dict[str, Any]:
    """The tags every model version carries (serving and lineage read them)."""
    return {
        "dataset_version": dataset_version,
        "git_commit": git_commit(),
        "model_family": family,
        "params": json.dumps(params, sort_keys=True),
        "training_run_id": run_id,
        "trained_by": kind,
        "optimise_metric": SPEC.optimise_metric,
        **{k: round(v, 4) for k, v in metrics.items()},
    }


def refit(search_result: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Step 2 of training: refit the best configuration, test it, log the model."""
    import mlflow

    from mlplatform.etl import read_manifest, read_version
    from mlplatform.registry import configure

    s = settings or get_settings()
    manifest = read_manifest(s)
    if manifest is None or manifest["dataset_version"] != search_result["dataset_version"]:
        # A new version arrived meanwhile: refit on the version that was searched.
        manifest = read_version(search_result["dataset_version"], s)
    configure(s)
    with mlflow.start_run(run_id=search_result["run_id"]):
        _, metrics, uri = refit_and_log(
            search_result["family"], search_result["params"], manifest, s
        )
    return {**search_result, "metrics": metrics, "model_uri": uri}


def register_model(result: dict[str, Any], kind: str, settings: Settings | None = None) -> str:
    """Register the logged model once (a retried task finds its version) and tag it."""
    from mlplatform.registry import configure, register

    s = settings or get_settings()
    client = configure(s)
    for mv in client.search_model_versions(f"name = '{s.REGISTERED_MODEL_NAME}'"):
        if mv.tags.get("training_run_id") == result["run_id"]:
            return str(mv.version)

    tags = version_tags(
        result["family"], result["params"], result["metrics"], result["run_id"],
        result["dataset_version"], kind,
    )  # fmt: skip
    # register() reads only the logged model's URI.
    info = SimpleNamespace(model_uri=result["model_uri"])
    return str(register(info, tags, s).version)  # type: ignore[arg-type]


def register_and_promote_first(
    result: dict[str, Any], settings: Settings | None = None
) -> dict[str, Any]:
    """Step 3 of training: register; the very first model becomes the champion."""
    from mlplatform.registry import get_champion, promote

    s = settings or get_settings()
    version = register_model(result, "training", s)
    champion = get_champion(s)
    if champion is None:
        promote(version, s)
        champion_version = version
    else:
        champion_version = str(champion.version)
    return {"version": version, "champion": champion_version, "metrics": result["metrics"]}


def train(n_trials: int | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """The whole training in one call (CLI, notebook); the DAG runs the three steps."""
    s = settings or get_settings()
    return register_and_promote_first(refit(run_search(n_trials, s), s), s)
