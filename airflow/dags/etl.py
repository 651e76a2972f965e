"""
### ETL: landing zone -> validated, cleaned, split dataset version

1. **validate**: every delivery in `landing/` is parsed and checked (pandera, built
   from the dataset SPEC: 14 columns, types, category codes, clinical ranges; `?` is
   missing). A wrongly shaped delivery (empty, wrong column count, mostly invalid)
   fails this task loudly, without retries, and nothing is written.
2. **build_version**: dedupe, binary target, drop rows with too many gaps, hash-based
   seeded split; Parquet under `clean/<version>/`, `splits/<version>/`, and the failed
   rows with their reason under `quarantine/<version>/`.
3. **publish**: the manifest `manifest/current.json` is written last.
4. **log_to_mlflow**: the dataset version (mlflow.data inputs with source and digest,
   row counts, missing-value stats) in the MLflow experiment.
5. **mark_dataset_updated**: updates the dataset Asset, which starts the retraining DAG.
   Skipped when the version did not change: re-running on the same input is a no-op.
"""

from __future__ import annotations

from airflow.sdk import Asset, dag, task

from mlplatform.ingest import DATASET_ASSET_NAME, dataset_asset_uri, pipeline_dag_args

DATASET = Asset(name=DATASET_ASSET_NAME, uri=dataset_asset_uri())


@dag(dag_id="etl", schedule=None, **pipeline_dag_args(__doc__, "data", retry_delay=20))
def etl():
    @task
    def validate() -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from mlplatform.etl import extract, validate_all
        from mlplatform.validation import DeliveryRejected

        try:
            valid, rejected = validate_all(extract())
        except DeliveryRejected as err:  # bad input: retrying cannot fix it
            raise AirflowFailException(
                f"{err}. Fix or withdraw it: mlplatform withdraw SOURCE"
            ) from err
        return {"valid_rows": len(valid), "invalid_rows": len(rejected)}

    @task
    def build_version() -> dict:
        from mlplatform.etl import build, extract, write_version
        from mlplatform.settings import get_settings

        s = get_settings()
        return write_version(build(extract(s), s.RANDOM_SEED, s.TEST_FRACTION), s)

    @task
    def publish(metadata: dict) -> dict:
        from mlplatform.etl import publish

        return {"dataset_version": metadata["dataset_version"], "changed": publish(metadata)}

    @task
    def log_to_mlflow(metadata: dict) -> str:
        from mlplatform.etl import log_to_mlflow

        return log_to_mlflow(metadata)

    @task(outlets=[DATASET])
    def mark_dataset_updated(published: dict, outlet_events=None) -> str:
        from airflow.sdk.exceptions import AirflowSkipException

        if not published["changed"]:
            raise AirflowSkipException(f"{published['dataset_version']} is already current")
        outlet_events[DATASET].extra = {"dataset_version": published["dataset_version"]}
        return published["dataset_version"]

    metadata = build_version()
    published = publish(metadata)
    validate() >> metadata
    published >> log_to_mlflow(metadata) >> mark_dataset_updated(published)


etl()
