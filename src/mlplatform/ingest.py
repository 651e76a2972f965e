"""Deliveries into the landing zone: `landing/<source>/<file>`, raw bytes unchanged.

The platform seeds the initial delivery (Cleveland) on first start; `mlplatform deliver
SOURCE` drops another hospital's file the way a new delivery would arrive. Kept free of
heavy imports: the pipeline DAG files import the dataset Asset and their common
arguments from here when Airflow parses them.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mlplatform.dataset import SPEC
from mlplatform.layout import LANDING, MANIFEST
from mlplatform.settings import Settings, get_settings

# Airflow Asset the ETL marks when it publishes a new dataset version; retraining listens.
DATASET_ASSET_NAME = f"{SPEC.name}_dataset"


def dataset_asset_uri(settings: Settings | None = None) -> str:
    s = settings or get_settings()
    return f"s3://{s.DATA_REPO_BUCKET_NAME}/{MANIFEST}"


def pipeline_dag_args(
    doc: str, *tags: str, retry_delay: float = 30, **extra: Any
) -> dict[str, Any]:
    """What every pipeline DAG shares: no backfill, one run at a time, retries with a delay."""
    return {
        "start_date": datetime(2026, 1, 1),
        "catchup": False,
        "max_active_runs": 1,
        "tags": ["pipelines", *tags],
        "doc_md": doc,
        "default_args": {"retries": 2, "retry_delay": timedelta(seconds=retry_delay)},
        **extra,
    }


@dataclass(frozen=True)
class Delivery:
    source: str
    key: str
    md5: str


def landing_key(source: str, filename: str) -> str:
    return f"{LANDING}{source}/{filename}"


def seed_file(source: str, settings: Settings | None = None) -> Path:
    """The file of a known source in the seed data folder (SEED_DATA_DIR)."""
    s = settings or get_settings()
    if source not in SPEC.deliveries:
        known = ", ".join(SPEC.deliveries)
        raise ValueError(f"unknown source {source!r}: known sources are {known} (or pass a file)")
    path = Path(s.SEED_DATA_DIR) / SPEC.deliveries[source]
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: set SEED_DATA_DIR to the folder of the UCI files"
        )
    return path


def deliver(
    source: str, path: Path | None = None, settings: Settings | None = None
) -> tuple[str, bool]:
    """Drop a file into `landing/<source>/`; returns (key, whether it was new).

    Delivering the same bytes again changes nothing (same key, same content).
    """
    from mlplatform.lake import ensure_buckets, exists, get_bytes, put_bytes_atomic, s3_client

    s = settings or get_settings()
    path = path or seed_file(source, s)
    data = Path(path).read_bytes()
    client = s3_client(s)
    ensure_buckets(s, client)
    key = landing_key(source, Path(path).name)
    bucket = s.DATA_REPO_BUCKET_NAME
    if exists(bucket, key, client) and get_bytes(bucket, key, client) == data:
        return key, False
    put_bytes_atomic(bucket, key, data, client, "text/csv")
    return key, True


def withdraw(source: str, settings: Settings | None = None) -> list[str]:
    """Remove a source's files from the landing zone (e.g. a rejected delivery)."""
    from mlplatform.lake import list_keys, s3_client

    s = settings or get_settings()
    client = s3_client(s)
    keys = list(list_keys(s.DATA_REPO_BUCKET_NAME, landing_key(source, ""), client))
    for key in keys:
        client.delete_object(Bucket=s.DATA_REPO_BUCKET_NAME, Key=key)
    return keys


def deliveries(settings: Settings | None = None) -> list[Delivery]:
    """Every file in the landing zone, sorted, with its content digest."""
    from mlplatform.lake import get_bytes, list_keys, s3_client

    s = settings or get_settings()
    client = s3_client(s)
    found = []
    for key in sorted(list_keys(s.DATA_REPO_BUCKET_NAME, LANDING, client)):
        source = key.removeprefix(LANDING).split("/", 1)[0]
        digest = hashlib.md5(get_bytes(s.DATA_REPO_BUCKET_NAME, key, client)).hexdigest()
        found.append(Delivery(source, key, digest))
    return found


def seed_landing(settings: Settings) -> None:
    """After-start hook: seed the initial delivery once; later starts leave the lake alone."""
    from mlplatform.lake import ensure_buckets, list_keys, s3_client

    client = s3_client(settings)
    ensure_buckets(settings, client)
    if next(iter(list_keys(settings.DATA_REPO_BUCKET_NAME, LANDING, client)), None) is None:
        try:
            key, _ = deliver(SPEC.initial_delivery, settings=settings)
        except FileNotFoundError as err:  # the stack still starts; deliver by hand later
            print(f"warning: the landing zone is not seeded: {err}", file=sys.stderr, flush=True)
            return
        print(f"seeded the landing zone: s3://{settings.DATA_REPO_BUCKET_NAME}/{key}", flush=True)
