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
5. **mark_dataset_updated**: updates the dataset Asset, which starts the retraining DAG,
   whenever the current version has not been announced yet (so a run that failed after
   publishing is made good by the next one); skipped otherwise: re-running on the same
   input is a no-op.
6. **record_announced**: remembers the announced version (after the event went out).
"""

from __future__ import annotations

from airflow.sdk import dag, task
from common import DATASET, dag_args


@dag(dag_id="etl", schedule=None, **dag_args(__doc__, "pipelines", "data", retry_delay=20))
def etl():
    @task
    def validate() -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from mlplatform.etl import validate_deliveries
        from mlplatform.settings import get_settings
        from mlplatform.validation import DeliveryRejected

        try:
            return validate_deliveries(get_settings())
        except DeliveryRejected as err:  # bad input: retrying cannot fix it
            raise AirflowFailException(
                f"{err}. Fix or withdraw it: mlplatform withdraw SOURCE"
            ) from err

    @task
    def build_version() -> dict:
        from mlplatform.etl import build_version
        from mlplatform.settings import get_settings

        return build_version(get_settings()).to_dict()

    @task
    def publish(metadata: dict) -> dict:
        from mlplatform.etl import publish
        from mlplatform.settings import get_settings
        from mlplatform.store import DatasetMetadata

        changed = publish(DatasetMetadata.from_dict(metadata), get_settings())
        return {"dataset_version": metadata["dataset_version"], "changed": changed}

    @task
    def log_to_mlflow(metadata: dict) -> str:
        from mlplatform.etl import log_to_mlflow
        from mlplatform.settings import get_settings
        from mlplatform.store import DatasetMetadata

        return log_to_mlflow(DatasetMetadata.from_dict(metadata), get_settings())

    @task(outlets=[DATASET])
    def mark_dataset_updated(outlet_events=None) -> str:
        from airflow.sdk.exceptions import AirflowSkipException

        from mlplatform.etl import version_to_announce
        from mlplatform.settings import get_settings

        version = version_to_announce(get_settings())
        if version is None:
            raise AirflowSkipException("the current dataset version is announced already")
        outlet_events[DATASET].extra = {"dataset_version": version}
        return version

    @task
    def record_announced(version: str) -> None:
        from mlplatform.etl import mark_announced
        from mlplatform.settings import get_settings

        mark_announced(version, get_settings())

    metadata = build_version()
    published = publish(metadata)
    validate() >> metadata
    announced = mark_dataset_updated()
    published >> log_to_mlflow(metadata) >> announced
    record_announced(announced)


etl()
