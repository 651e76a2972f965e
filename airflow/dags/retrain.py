"""
### Retraining: champion / challenger

Runs by itself whenever the ETL publishes a new dataset version (the dataset Asset),
and on demand (param `n_trials` > 0 adds a short new search).

1. **challenge**: the challenger is the champion's configuration refit on the current
   training split (or a better one found by the optional search). Champion and
   challenger are scored on the SAME current test split; both scores and the decision
   are logged to MLflow. Nothing in the registry changes in this task.
2. **apply_decision**: the challenger is registered with the alias `challenger`, and
   becomes `champion` only if its F1 beats the champion's by `PROMOTION_MARGIN`. The
   former champion keeps `previous_champion`. There is always a champion.

Skipped while there is no champion yet (run the training DAG first).
"""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, task

from mlplatform.ingest import DATASET_ASSET_NAME, dataset_asset_uri, pipeline_dag_args

DATASET = Asset(name=DATASET_ASSET_NAME, uri=dataset_asset_uri())
TRIALS = Param(None, type=["null", "integer"], minimum=0, description="new search trials")


@dag(
    dag_id="retrain",
    schedule=[DATASET],
    **pipeline_dag_args(__doc__, "training", params={"n_trials": TRIALS}),
)
def retrain():
    @task
    def challenge(params=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from mlplatform.retraining import SKIPPED, train_challenger

        result = train_challenger(params.get("n_trials"))
        if result["decision"] == SKIPPED:
            raise AirflowSkipException(result["reason"])
        return result

    @task
    def apply_decision(result: dict) -> dict:
        from mlplatform.retraining import apply_decision

        return apply_decision(result)

    apply_decision(challenge())


retrain()
