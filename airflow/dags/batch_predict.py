"""
### Batch predictions

Scores every CSV or Parquet file under `batch/incoming/` in the data bucket with
the registry's current `champion`, one mapped task per file. Predictions go to
`batch/output/<file>/part-*.parquet` (row id, label, probability, model version,
scored-at), rows that fail validation to `rejected-*.parquet` with the reason, and
the input moves to `batch/done/`. Re-running never duplicates output.
Drop a file with `mlplatform batch-drop` or upload one in the S3 console.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["serving", "batch"],
    doc_md=__doc__,
)
def batch_predict():
    @task
    def pending_files() -> list[str]:
        from mlplatform.batch import pending_files

        return pending_files()

    @task(max_active_tis_per_dagrun=2)
    def score_file(key: str) -> dict:
        from dataclasses import asdict

        from mlplatform.batch import load_champion_model, score_file

        result = score_file(key, load_champion_model())
        print(
            f"{key}: {result.scored} scored, {result.rejected} rejected -> {result.output_prefix}"
        )
        return asdict(result)

    score_file.expand(key=pending_files())


batch_predict()
