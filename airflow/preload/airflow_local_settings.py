"""Preload the tasks' heavy modules once, in the processes that run tasks.

Airflow imports `airflow_local_settings` at start-up from sys.path. The entrypoint puts this
folder on PYTHONPATH only for the scheduler (its LocalExecutor workers are forked from it) and
the Celery workers (their pool processes are forked from them). Airflow 3's task supervisor
then starts each task with os.fork() (airflow.sdk.execution_time.supervisor), so every task
inherits these modules already imported instead of spending seconds importing pandas,
scikit-learn and MLflow anew. Importing is all it does: no threads, connections or settings.
"""

from __future__ import annotations

import importlib
import logging

# Nothing here overrides airflow.settings: Airflow copies every name in __all__ into it.
__all__: list[str] = []

# What the DAGs' tasks import (airflow/dags); they pull in pandas, scikit-learn, MLflow, boto3.
PRELOAD = (
    "mlplatform.etl",
    "mlplatform.training",
    "mlplatform.retraining",
    "mlplatform.search",
    "mlplatform.batch",
    "mlplatform.monitor",
    "mlplatform.progress",
    "mlplatform.store",
    "mlflow.sklearn",
)

for _name in PRELOAD:
    try:
        importlib.import_module(_name)
    except Exception:  # a failed preload only costs speed: the task imports (and fails) itself
        logging.getLogger(__name__).warning("preload of %s failed", _name, exc_info=True)
