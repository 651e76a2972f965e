"""
### Batch predictions

Scores every CSV or Parquet file under `batch/incoming/` in the data bucket with
the registry's current `champion`, one mapped task per file. Predictions go to
`batch/output/<file>/<run>/part-*.parquet` (row id, label, probability, model version,
scored-at), rows that fail validation to `rejected-*.parquet` with the reason, and
the input moves to `batch/done/`. Re-running never duplicates output. With
`BATCH_ENGINE=spark` the rows are scored on Spark (`SPARK_MASTER_URL`) through MLflow's
`spark_udf` of the champion; the output is the same.
Drop a file with `mlplatform batch-drop` or upload one in the S3 console.
"""

from __future__ import annotations

from airflow.sdk import dag, task
from common import dag_args


@dag(schedule=None, **dag_args(__doc__, "serving", "batch", retry_delay=20, timeout_minutes=60))
def batch_predict():
    @task
    def pending_files() -> list[str]:
        from mlplatform.batch import SUFFIXES
        from mlplatform.lake import Lake
        from mlplatform.settings import get_settings
        from mlplatform.store import DataStore

        return DataStore(Lake(get_settings())).pending_batch_files(SUFFIXES)

    @task(max_active_tis_per_dagrun=2)
    def score_file(key: str, run_id: str | None = None) -> dict:
        from dataclasses import asdict

        from mlplatform.batch import batch_model, score_file
        from mlplatform.lake import Lake
        from mlplatform.progress import counter
        from mlplatform.settings import get_settings
        from mlplatform.store import DataStore

        s = get_settings()
        store = DataStore(Lake(s))
        # BATCH_ENGINE: in this task's process, or on Spark (session stopped after the file).
        with batch_model(s) as model, counter(f"scoring {key}") as progress:  # rows/s in log
            result = score_file(
                key, model, store, s.BATCH_CHUNK_ROWS, run_id or "", on_chunk=progress.advance
            )
        print(
            f"{key}: {result.scored} scored, {result.rejected} rejected -> {result.output_prefix}"
            f" ({model.backend}: {model.backend_reason})"
        )
        return asdict(result)

    score_file.expand(key=pending_files())


batch_predict()
