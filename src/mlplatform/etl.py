"""The ETL's steps, one call per DAG task: landing zone -> validated, cleaned, split dataset
version -> manifest -> MLflow -> the dataset Asset event.

The logic lives in `build` (pure), `ingest` (landing zone), `store` (versions, manifest) and
`tracking` (MLflow); this module wires them with the settings the task resolved.
"""

from __future__ import annotations

from mlplatform.build import build, validate_all
from mlplatform.ingest import extract
from mlplatform.lake import Lake
from mlplatform.settings import Settings
from mlplatform.spec import SPEC
from mlplatform.store import ROW_ID, DatasetMetadata, DataStore


def validate_deliveries(settings: Settings) -> dict[str, int]:
    """Validate every delivery; raises DeliveryRejected for a wrongly shaped one."""
    valid, rejected = validate_all(extract(Lake(settings)), SPEC)
    return {"valid_rows": len(valid), "invalid_rows": len(rejected)}


def previous_splits(store: DataStore) -> dict[str, str] | None:
    """Row id -> split of the published version: its rows keep their split in the next."""
    manifest = store.read_manifest()
    if manifest is None:
        return None
    frames = store.load_splits(manifest, SPEC, with_ids=True)
    return {row: name for name, df in frames.items() for row in df[ROW_ID]}


def build_version(settings: Settings) -> DatasetMetadata:
    """Build the dataset version of everything in the landing zone and write it (idempotent)."""
    store = DataStore(Lake(settings))
    built = build(
        extract(store.lake),
        settings.RANDOM_SEED,
        settings.TEST_FRACTION,
        SPEC,
        previous_splits(store),
    )
    return store.write_version(built, SPEC, settings.RANDOM_SEED, settings.TEST_FRACTION)


def publish(metadata: DatasetMetadata, settings: Settings) -> bool:
    return DataStore(Lake(settings)).publish(metadata)


def log_to_mlflow(metadata: DatasetMetadata, settings: Settings) -> str:
    from mlplatform.tracking import log_dataset_version

    return log_dataset_version(metadata, DataStore(Lake(settings)), settings, SPEC)


def version_to_announce(settings: Settings) -> str | None:
    """The current version if its Asset event has not gone out yet, else None.

    Compared with the last announced version, not with "did this run publish": a run that
    published and then failed before the event leaves the version unannounced, and the next
    run announces it instead of seeing "already current" forever.
    """
    store = DataStore(Lake(settings))
    manifest = store.read_manifest()
    if manifest is None or manifest.dataset_version == store.announced_version():
        return None
    return manifest.dataset_version


def mark_announced(version: str, settings: Settings) -> None:
    DataStore(Lake(settings)).mark_announced(version)
