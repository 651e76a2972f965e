"""
### Platform smoke test

Writes one small JSON object to the data lake (`smoke/<run_id>.json` in the data
bucket). Trigger it to check that Airflow can run tasks that reach S3.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["platform"],
    doc_md=__doc__,
)
def platform_smoke():
    @task
    def write_marker(run_id: str | None = None) -> str:
        import json

        from mlplatform.lake import put_bytes_atomic
        from mlplatform.settings import get_settings

        s = get_settings()
        key = f"smoke/{run_id}.json"
        put_bytes_atomic(s.DATA_REPO_BUCKET_NAME, key, json.dumps({"run_id": run_id}).encode())
        return key

    write_marker()


platform_smoke()
