"""
### Training: hyperparameter search, refit, registration

On the current dataset version (the manifest):

1. **search**: an Optuna study (seeded TPE) over logistic regression, SVM, random
   forest and gradient boosting, each trial a nested MLflow run scored by stratified
   K-fold CV on the training split. Optimises F1; ROC AUC and others are reported.
   Param `n_trials` overrides the setting `N_TRIALS`.
2. **refit**: the best configuration is refit on the whole training split (one sklearn
   Pipeline with all preprocessing), evaluated once on the test split, and logged with
   plots, a signature and an input example.
3. **register**: registered under one model name, tagged with dataset version, git commit
   and metrics. The first model becomes `champion`; later ones wait for retraining.

A failing task leaves the registry and the champion as they were.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from common import dag_args

TRIALS = Param(None, type=["null", "integer"], minimum=1, description="Optuna trials")


@dag(
    dag_id="train",
    schedule=None,
    **dag_args(__doc__, "pipelines", "training", timeout_minutes=120, params={"n_trials": TRIALS}),
)
def train():
    @task
    def search(params=None) -> dict:
        from mlplatform.lake import Lake
        from mlplatform.settings import get_settings
        from mlplatform.store import DataStore
        from mlplatform.training import run_search

        s = get_settings()
        return run_search(params.get("n_trials"), DataStore(Lake(s)), s).to_dict()

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

    register(refit(search()))


train()
