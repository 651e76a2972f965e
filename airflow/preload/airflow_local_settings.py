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
import warnings

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
    # Its import looks up ~330 scipy ufuncs in every loaded module (skops' `whichmodule`);
    # in a task, each lookup on Airflow's deprecated-name shims logged a warning to the task
    # log, 16 s in each of refit, challenge and compute. Here it runs once, quietly.
    "skops.io",
)

for _name in PRELOAD:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation notices of the lookups above
            importlib.import_module(_name)
    except Exception:  # a failed preload only costs speed: the task imports (and fails) itself
        logging.getLogger(__name__).warning("preload of %s failed", _name, exc_info=True)
