"""
### Retraining: champion / challenger

Runs by itself whenever the ETL publishes a new dataset version (the dataset Asset) or
the monitor finds the served model degraded (the model-degraded Asset), and on demand
(param `n_trials` > 0 adds a short new search). The decision record says what started it.

1. **challenge**: the challenger is the champion's configuration refit on the current
   training split (or a better one found by the optional search). Champion and
   challenger are scored on the SAME current test split; both scores and the decision
   are logged to MLflow. Nothing in the registry changes in this task.
2. **apply_decision**: the challenger is registered with the alias `challenger`, and
   becomes `champion` only if it passes the promotion gate (PROMOTION_* settings). The
   former champion keeps `previous_champion`. There is always a champion.

Skipped while there is no champion yet (run the training DAG first).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from common import DATASET, MODEL_DEGRADED, dag_args

TRIALS = Param(None, type=["null", "integer"], minimum=0, description="new search trials")


@dag(
    dag_id="retrain",
    schedule=(DATASET | MODEL_DEGRADED),
    **dag_args(__doc__, "pipelines", "training", timeout_minutes=120, params={"n_trials": TRIALS}),
)
def retrain():
    @task
    def challenge(params=None, triggering_asset_events=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from mlplatform.lake import Lake
        from mlplatform.retraining import SKIPPED, train_challenger
        from mlplatform.settings import get_settings
        from mlplatform.store import DataStore

        s = get_settings()
        trigger = {
            str(getattr(asset, "name", asset)): [dict(event.extra or {}) for event in events]
            for asset, events in (triggering_asset_events or {}).items()
        }
        result = train_challenger(params.get("n_trials"), DataStore(Lake(s)), s, trigger=trigger)
        if result.decision == SKIPPED:
            raise AirflowSkipException(result.reason)
        return result.to_dict()

    @task
    def apply_decision(result: dict) -> dict:
        from mlplatform.retraining import Challenge, apply_decision
        from mlplatform.settings import get_settings

        return apply_decision(Challenge.from_dict(result), get_settings()).to_dict()

    apply_decision(challenge())


retrain()
