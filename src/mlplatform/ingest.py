"""Deliveries into the landing zone: `landing/<source>/<file>`, raw bytes unchanged.

The platform seeds the initial delivery (Cleveland) on first start; `mlplatform deliver
SOURCE` drops another hospital's file the way a new delivery would arrive.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from mlplatform.build import RawDelivery
from mlplatform.dataset import DatasetSpec
from mlplatform.lake import Lake, ensure_buckets
from mlplatform.settings import Settings
from mlplatform.spec import SPEC
from mlplatform.store import LANDING, landing_key, source_of


def seed_file(source: str, settings: Settings, spec: DatasetSpec = SPEC) -> Path:
    """The file of a known source in the seed data folder (SEED_DATA_DIR)."""
    if source not in spec.deliveries:
        known = ", ".join(spec.deliveries)
        raise ValueError(f"unknown source {source!r}: known sources are {known} (or pass a file)")
    path = Path(settings.SEED_DATA_DIR) / spec.deliveries[source]
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: set SEED_DATA_DIR to the folder of the UCI files"
        )
    return path


def deliver(source: str, settings: Settings, path: Path | None = None) -> tuple[str, bool]:
    """Drop a file into `landing/<source>/`; returns (key, whether it was new).

    Delivering the same bytes again changes nothing (same key, same content).
    """
    path = path or seed_file(source, settings)
    return deliver_bytes(source, Path(path).name, Path(path).read_bytes(), settings)


def deliver_bytes(source: str, filename: str, data: bytes, settings: Settings) -> tuple[str, bool]:
    """Put `data` at `landing/<source>/<filename>` (atomically); False when it held them already."""
    ensure_buckets(settings)
    lake = Lake(settings)
    key = landing_key(source, filename)
    if lake.exists(key) and lake.get(key) == data:
        return key, False
    lake.put_atomic(key, data, "text/csv")
    return key, True


def withdraw(source: str, settings: Settings) -> list[str]:
    """Remove a source's files from the landing zone (e.g. a rejected delivery)."""
    lake = Lake(settings)
    keys = list(lake.list(landing_key(source, "")))
    for key in keys:
        lake.delete(key)
    return keys


def read_deliveries(lake: Lake) -> list[RawDelivery]:
    """Every file in the landing zone, sorted, with its bytes and content digest."""
    found = []
    for key in sorted(lake.list(LANDING)):
        data = lake.get(key)
        found.append(RawDelivery(source_of(key), key, hashlib.md5(data).hexdigest(), data))
    return found


def extract(lake: Lake) -> list[RawDelivery]:
    """The ETL's input; an empty landing zone is an error the user can fix."""
    found = read_deliveries(lake)
    if not found:
        raise FileNotFoundError("the landing zone is empty: run `mlplatform deliver cleveland`")
    return found


def seed_landing(settings: Settings) -> None:
    """After-start hook: seed the initial delivery once; later starts leave the lake alone."""
    ensure_buckets(settings)
    if next(iter(Lake(settings).list(LANDING)), None) is None:
        try:
            key, _ = deliver(SPEC.initial_delivery, settings)
        except FileNotFoundError as err:  # the stack still starts; deliver by hand later
            print(f"warning: the landing zone is not seeded: {err}", file=sys.stderr, flush=True)
            return
        print(f"seeded the landing zone: s3://{settings.DATA_REPO_BUCKET_NAME}/{key}", flush=True)
