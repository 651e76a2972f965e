"""
### Platform smoke test

Writes one small JSON object to the data lake (`smoke/<run_id>.json` in the data
bucket). Trigger it to check that Airflow can run tasks that reach S3.
"""

from __future__ import annotations

from airflow.sdk import dag, task
from common import dag_args


@dag(schedule=None, **dag_args(__doc__, "platform", retries=0, timeout_minutes=5))
def platform_smoke():
    @task
    def write_marker(run_id: str | None = None) -> str:
        import json

        from mlplatform.lake import Lake
        from mlplatform.settings import get_settings

        key = f"smoke/{run_id}.json"
        Lake(get_settings()).put_atomic(key, json.dumps({"run_id": run_id}).encode())
        return key

    write_marker()


platform_smoke()
