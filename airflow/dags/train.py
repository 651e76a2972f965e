"""
### Training: hyperparameter search, refit, registration

On the current dataset version (the manifest):

1. **plan_search**: the parent MLflow run of the search. Param `n_trials` overrides the
   setting `N_TRIALS`, param `search_workers` the setting `SEARCH_WORKERS` (K).
2. **search** (K mapped tasks): an Optuna study over logistic regression, SVM, random
   forest and gradient boosting, each trial a nested MLflow run scored by stratified
   K-fold CV on the training split. Optimises F1; ROC AUC and others are reported.
   K = 1: one in-process study, seeded TPE, deterministic. K > 1: the tasks share one study
   in PostgreSQL (named after the DAG run; a retried task joins it and runs only its
   missing trials), each with N_TRIALS/K trials, so Celery workers on several machines
   can take part.
3. **pick_best**: the best trial of the study.
4. **refit**: the best configuration is refit once on the whole training split (one sklearn
   Pipeline with all preprocessing), evaluated once on the test split, and logged with
   plots, a signature and an input example.
5. **register**: registered under one model name, tagged with dataset version, git commit
   and metrics. The first model becomes `champion`; later ones wait for retraining.

A failing task leaves the registry and the champion as they were.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from common import dag_args

TRIALS = Param(None, type=["null", "integer"], minimum=1, description="Optuna trials")
WORKERS = Param(
    None, type=["null", "integer"], minimum=1, description="parallel search tasks sharing a study"
)


@dag(
    dag_id="train",
    schedule=None,
    **dag_args(
        __doc__,
        "pipelines",
        "training",
        timeout_minutes=120,
        params={"n_trials": TRIALS, "search_workers": WORKERS},
    ),
)
def train():
    @task
    def plan_search(params=None, run_id=None) -> list[dict]:
        from mlplatform.lake import Lake
        from mlplatform.search import plan_search
        from mlplatform.settings import get_settings
        from mlplatform.store import DataStore

        s = get_settings()
        plans = plan_search(
            params.get("n_trials"), params.get("search_workers"), run_id, DataStore(Lake(s)), s
        )
        return [p.to_dict() for p in plans]

    @task(multiple_outputs=False)  # one XCom per mapped task, not one per key
    def search(plan: dict) -> dict:
        from mlplatform.lake import Lake
        from mlplatform.search import SearchPlan, run_part
        from mlplatform.settings import get_settings
        from mlplatform.store import DataStore

        s = get_settings()
        return run_part(SearchPlan.from_dict(plan), DataStore(Lake(s)), s)

    @task
    def pick_best(parts: list[dict]) -> dict:
        from mlplatform.search import finish_search
        from mlplatform.settings import get_settings

        return finish_search(list(parts), get_settings()).to_dict()

    @task
    def refit(search_result: dict) -> dict:
        from mlplatform.lake import Lake
        from mlplatform.settings import get_settings
        from mlplatform.store import DataStore
        from mlplatform.training import SearchResult, refit

        s = get_settings()
        return refit(SearchResult.from_dict(search_result), DataStore(Lake(s)), s).to_dict()

    @task
    def register(result: dict) -> dict:
        from mlplatform.settings import get_settings
        from mlplatform.training import TrainedModel, register_and_promote_first

        return register_and_promote_first(TrainedModel.from_dict(result), get_settings())

    register(refit(pick_best(search.expand(plan=plan_search()))))


train()
