"""The training search as three steps, so K tasks (Airflow mapped tasks, Celery workers on
several machines) can share one Optuna study.

1. `plan_search`: the parent MLflow run (inputs, settings) and, for K > 1, the study in
   PostgreSQL (`RDBStorage`, database OPTUNA_PG_DATABASE), named after the DAG run so a
   retried task joins it and a new DAG run starts afresh. One plan per worker.
2. `run_part`: one worker's trials, each a nested MLflow run under the parent. K = 1 is the
   in-process, seeded, deterministic study of `training.search`; K > 1 loads the shared study
   with a TPE sampler seeded `seed + worker` and runs the worker's share of the trials.
3. `finish_search`: the best trial (from the storage for K > 1), logged to the parent run;
   the refit then runs once on it.

Nothing depends on local files: the data comes from the lake, the study from PostgreSQL, the
runs from MLflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mlplatform.dataset import DatasetSpec
from mlplatform.errors import ConfigurationError
from mlplatform.records import Record
from mlplatform.settings import Settings
from mlplatform.spec import SPEC
from mlplatform.training import Candidate, SearchResult, TrialCallback

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from mlplatform.store import DataStore

# Trial user attribute: the index of the worker that ran the trial.
WORKER = "worker"
# Study user attribute: the parent MLflow run, so a retried plan reuses it.
PARENT_RUN = "mlflow_run_id"


@dataclass(frozen=True)
class SearchPlan(Record):
    """One worker's part of a search: the parent run, the dataset version, the study (empty
    for the in-process K = 1 study) and the worker's index and number of trials."""

    run_id: str
    dataset_version: str
    n_trials: int  # of the whole search
    study: str
    worker: int
    worker_trials: int


def split_trials(n_trials: int, workers: int) -> list[int]:
    """Trials per worker: n_trials // workers each, the remainder one each to the first ones.
    Never a worker with no trial: more workers than trials gives one trial to each of
    n_trials workers."""
    if n_trials < 1 or workers < 1:
        raise ConfigurationError(
            f"a search needs n_trials >= 1 and search_workers >= 1, got {n_trials}, {workers}"
        )
    base, extra = divmod(n_trials, workers)
    return [base + (i < extra) for i in range(min(workers, n_trials))]


def study_name(dag_run_id: str, spec: DatasetSpec = SPEC) -> str:
    return f"{spec.name}-train-{dag_run_id}"


def storage(settings: Settings) -> optuna.storages.RDBStorage:
    import optuna

    return optuna.storages.RDBStorage(settings.pg_url(settings.OPTUNA_PG_DATABASE))


def worker_sampler(seed: int, worker: int) -> optuna.samplers.TPESampler:
    """Each worker's TPE draws from its own stream; constant_liar steers it away from the
    configurations other workers are evaluating at the same time."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed + worker, constant_liar=True)


def completed(trials: Iterable[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    import optuna

    return [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]


def trials_of(study: optuna.Study, worker: int) -> list[optuna.trial.FrozenTrial]:
    """The trials a worker completed (in any attempt of its task)."""
    return [t for t in completed(study.trials) if t.user_attrs.get(WORKER) == worker]


def pick_best(trials: Sequence[optuna.trial.FrozenTrial]) -> optuna.trial.FrozenTrial:
    """The completed trial with the highest score; on a tie the earliest (lowest number), so
    the pick does not depend on which worker finished first."""
    done = [t for t in completed(trials) if t.value is not None]
    if not done:
        raise RuntimeError("the study has no completed trial: every worker failed")
    return min(done, key=lambda t: (-float(t.value or 0.0), t.number))


def plan_search(
    n_trials: int | None,
    workers: int | None,
    dag_run_id: str,
    store: DataStore,
    settings: Settings,
    spec: DatasetSpec = SPEC,
) -> list[SearchPlan]:
    """The parent run on the current dataset version and, for more than one worker, the
    shared study (created once, load_if_exists). Returns one plan per worker."""
    import mlflow
    import optuna

    from mlplatform.dbinit import ensure_database
    from mlplatform.tracking import log_inputs, start_parent_run

    n_trials = n_trials or settings.N_TRIALS
    shares = split_trials(n_trials, workers or settings.SEARCH_WORKERS)
    metadata = store.current()
    study, name, run_id = None, "", ""
    if len(shares) > 1:
        if not dag_run_id:
            raise ConfigurationError("a shared study needs a run id to be named after")
        ensure_database(settings, settings.OPTUNA_PG_DATABASE)
        name = study_name(dag_run_id, spec)
        study = optuna.create_study(
            storage=storage(settings), study_name=name, direction="maximize", load_if_exists=True
        )
        run_id = study.user_attrs.get(PARENT_RUN, "")
    if not run_id:
        frames = store.load_splits(metadata, spec)
        with start_parent_run("training", metadata, settings) as run:
            log_inputs(metadata, frames, spec)
            mlflow.log_params(
                {
                    "n_trials": n_trials,
                    "search_workers": len(shares),
                    "cv_folds": settings.CV_FOLDS,
                    "seed": settings.RANDOM_SEED,
                    "optimise_metric": spec.optimise_metric,
                    "dataset_version": metadata.dataset_version,
                    **({"optuna_study": name} if name else {}),
                }
            )
        run_id = run.info.run_id
        if study is not None:
            study.set_user_attr(PARENT_RUN, run_id)
    return [
        SearchPlan(run_id, metadata.dataset_version, n_trials, name, worker, share)
        for worker, share in enumerate(shares)
    ]


def run_part(
    plan: SearchPlan, store: DataStore, settings: Settings, spec: DatasetSpec = SPEC
) -> dict[str, Any]:
    """One worker's trials, logged as nested runs of the parent. A retried worker runs only
    the trials its earlier attempts did not complete."""
    import mlflow

    from mlplatform.registry import configure
    from mlplatform.tracking import log_trial
    from mlplatform.training import search

    train = store.load_split("train", store.read_version(plan.dataset_version), spec)
    seed, folds = settings.RANDOM_SEED, settings.CV_FOLDS
    configure(settings)
    with mlflow.start_run(run_id=plan.run_id):
        if not plan.study:
            best = search(train, plan.worker_trials, seed, folds, log_trial, spec)
            return {"plan": plan.to_dict(), "trials": plan.worker_trials, "best": asdict(best)}
        done = optimize_share(
            plan.study, storage(settings), train, plan.worker, plan.worker_trials,
            seed, folds, log_trial, spec,
        )  # fmt: skip
        return {"plan": plan.to_dict(), "trials": done}


def optimize_share(
    name: str,
    store: str | optuna.storages.BaseStorage,
    train: pd.DataFrame,
    worker: int,
    worker_trials: int,
    seed: int,
    folds: int,
    on_trial: TrialCallback | None = None,
    spec: DatasetSpec = SPEC,
) -> int:
    """Run worker `worker`'s share of the shared study `name` until it has completed
    `worker_trials` trials (counting earlier attempts), and return that count."""
    import optuna

    from mlplatform.training import objective, quiet_search

    quiet_search()
    study = optuna.load_study(study_name=name, storage=store, sampler=worker_sampler(seed, worker))
    remaining = worker_trials - len(trials_of(study, worker))
    if remaining > 0:
        score = objective(train, seed, folds, on_trial, spec, **{WORKER: worker})
        study.optimize(score, n_trials=remaining)
    return len(trials_of(study, worker))


def finish_search(
    parts: Sequence[dict[str, Any]], settings: Settings, spec: DatasetSpec = SPEC
) -> SearchResult:
    """The best configuration over all workers, logged to the parent run: the refit input."""
    import mlflow
    import optuna

    from mlplatform.registry import configure
    from mlplatform.training import candidate_of

    plan = SearchPlan.from_dict(parts[0]["plan"])
    if plan.study:
        study = optuna.load_study(study_name=plan.study, storage=storage(settings))
        best_trial = pick_best(study.trials)
        best, trials = candidate_of(best_trial), len(completed(study.trials))
        workers = {t.user_attrs.get(WORKER) for t in completed(study.trials)}
        extra = {"best_trial": best_trial.number, "workers_with_trials": len(workers)}
    else:
        best, trials, extra = Candidate(**parts[0]["best"]), int(parts[0]["trials"]), {}
    configure(settings)
    with mlflow.start_run(run_id=plan.run_id):
        mlflow.log_params(
            {"best_family": best.family, **{f"best.{k}": v for k, v in best.params.items()}}
        )
        mlflow.log_metrics({f"best_{k}": v for k, v in best.cv.items()})
        mlflow.log_metrics({"trials_completed": trials, **extra})
    return SearchResult(plan.run_id, plan.dataset_version, best.family, best.params, best.cv)
