"""What every DAG of the platform shares: the default arguments and the dataset Asset.

Not a DAG itself (listed in .airflowignore). Light at parse time: no heavy imports here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Asset

from mlplatform.settings import get_settings
from mlplatform.spec import SPEC
from mlplatform.store import MANIFEST, MONITORING_LATEST

_BUCKET = get_settings().DATA_REPO_BUCKET_NAME
# Marked by the ETL when a new dataset version is published; retraining listens to it.
DATASET = Asset(name=f"{SPEC.name}_dataset", uri=f"s3://{_BUCKET}/{MANIFEST}")
# Marked by the monitor when the served model degrades (drift, or live F1 below its test F1);
# retraining listens to it too.
MODEL_DEGRADED = Asset(
    name=f"{SPEC.name}_model_degraded", uri=f"s3://{_BUCKET}/{MONITORING_LATEST}"
)


def dag_args(
    doc: str,
    *tags: str,
    retries: int = 2,
    retry_delay: float = 30,
    timeout_minutes: float = 30,
    **extra: Any,
) -> dict[str, Any]:
    """No backfill, one run at a time, retries with a delay, and a time limit on every task
    (a hung task fails and retries instead of holding a slot forever)."""
    return {
        "start_date": datetime(2026, 1, 1),
        "catchup": False,
        "max_active_runs": 1,
        "tags": list(tags),
        "doc_md": doc,
        "default_args": {
            "retries": retries,
            "retry_delay": timedelta(seconds=retry_delay),
            "execution_timeout": timedelta(minutes=timeout_minutes),
        },
        **extra,
    }
