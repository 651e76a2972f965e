"""The data store: every key format of the data lake, and every read and write of dataset
versions, the manifest, batch outputs and the prediction log.

Layout of the data bucket (the README's "Data lake layout" is this module in prose):

    landing/<source>/<file>                raw deliveries, unchanged
    clean/<version>/data.parquet           validated, cleaned rows
    clean/<version>/dataset.json           the version's metadata, written last
    splits/<version>/{train,test}.parquet  the splits of that version
    quarantine/<version>/rows.parquet      rows that failed validation, with the reason
    manifest/current.json                  which version is current; written after the version
    manifest/announced.json                the last version whose Asset event went out
    batch/{incoming,output,done}/...       batch scoring
    predictions/log/date=YYYY-MM-DD/...    every online prediction, with its prediction_id
    feedback/received/date=YYYY-MM-DD/...  outcomes posted to /feedback, as received
    feedback/incoming/<file>.csv           hospitals' bulk outcome files, waiting
    feedback/done/<file>.csv               bulk files the monitor has taken
    monitoring/<window>/{summary.json,report.html}   one monitoring run
    monitoring/latest.json                 the newest summary (the service's gauges read it)
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from mlplatform.lake import Lake
from mlplatform.records import Record

if TYPE_CHECKING:
    import pandas as pd

    from mlplatform.build import Built
    from mlplatform.dataset import DatasetSpec

LANDING = "landing/"
QUARANTINE = "quarantine/"
CLEAN = "clean/"
SPLITS = "splits/"
MANIFEST = "manifest/current.json"
ANNOUNCED = "manifest/announced.json"
BATCH_INCOMING = "batch/incoming/"
BATCH_OUTPUT = "batch/output/"
BATCH_DONE = "batch/done/"
PREDICTION_LOG = "predictions/log/"
FEEDBACK_RECEIVED = "feedback/received/"
FEEDBACK_INCOMING = "feedback/incoming/"
FEEDBACK_DONE = "feedback/done/"
MONITORING = "monitoring/"
MONITORING_LATEST = "monitoring/latest.json"
SPLIT_NAMES = ("train", "test")
ROW_ID = "row_id"
SOURCE = "source"


def landing_key(source: str, filename: str) -> str:
    return f"{LANDING}{source}/{filename}"


def source_of(landing: str) -> str:
    return landing.removeprefix(LANDING).split("/", 1)[0]


def version_keys(version: str) -> dict[str, str]:
    keys = {
        "clean": f"{CLEAN}{version}/data.parquet",
        "metadata": f"{CLEAN}{version}/dataset.json",
        "quarantine": f"{QUARANTINE}{version}/rows.parquet",
    }
    keys.update({name: f"{SPLITS}{version}/{name}.parquet" for name in SPLIT_NAMES})
    return keys


def batch_output_prefix(key: str, run_id: str = "") -> str:
    """`batch/output/<file name with its suffix>/[<run>/]`: `x.csv` and `x.parquet` never share
    an output, and a run id keeps a re-dropped file from replacing an earlier run's output."""
    relative = key.removeprefix(BATCH_INCOMING)
    return f"{BATCH_OUTPUT}{relative}/" + (f"{run_id}/" if run_id else "")


def batch_done_key(key: str) -> str:
    return BATCH_DONE + key.removeprefix(BATCH_INCOMING)


def prediction_log_columns(spec: DatasetSpec) -> list[str]:
    """The prediction log's columns: who, when, which model, what it said, on which features."""
    return [
        "prediction_id", "timestamp", "endpoint", "model_name", "model_version", "label",
        "probability", *spec.feature_names,
    ]  # fmt: skip


def dated_key(prefix: str, now: datetime) -> str:
    """`<prefix>date=YYYY-MM-DD/HHMMSS-<random>.parquet`: partitioned by day, never overwritten."""
    return f"{prefix}date={now:%Y-%m-%d}/{now:%H%M%S}-{uuid.uuid4().hex[:12]}.parquet"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class DatasetMetadata(Record):
    """What `clean/<version>/dataset.json` says of a version."""

    dataset_version: str
    created_at: str
    dataset: str
    bucket: str
    keys: dict[str, str]
    digests: dict[str, str]
    counts: dict[str, int]
    deliveries: list[dict[str, Any]]
    seed: int
    test_fraction: float
    missing: dict[str, float]
    # Set only on the manifest: when it was published, and what was current before.
    published_at: str | None = None
    previous_version: str | None = None


class DataStore:
    """Reads and writes of the data bucket's formats, through one `Lake`."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    # dataset versions

    def write_version(
        self, built: Built, spec: DatasetSpec, seed: int, test_fraction: float
    ) -> DatasetMetadata:
        """Write the version under its own prefixes, its metadata last. Idempotent."""
        from mlplatform.build import frame_digest, missing_stats

        keys = version_keys(built.version)
        if self.lake.exists(keys["metadata"]):  # already complete: same content, no-op
            return self.read_version(built.version)
        self.lake.write_parquet(keys["clean"], built.clean)
        for name, df in built.splits.items():
            self.lake.write_parquet(keys[name], df)
        self.lake.write_parquet(keys["quarantine"], built.quarantine)
        metadata = DatasetMetadata(
            dataset_version=built.version,
            created_at=_now(),
            dataset=spec.name,
            bucket=self.lake.bucket,
            keys=keys,
            digests={name: frame_digest(df) for name, df in built.splits.items()},
            counts=built.counts,
            deliveries=built.deliveries,
            seed=seed,
            test_fraction=test_fraction,
            missing=missing_stats(built.clean, spec),
        )
        self._put_json(keys["metadata"], metadata.to_dict())
        return metadata

    def read_version(self, version: str) -> DatasetMetadata:
        """The metadata of any written dataset version."""
        return DatasetMetadata.from_dict(self._get_json(version_keys(version)["metadata"]))

    def read_manifest(self) -> DatasetMetadata | None:
        if not self.lake.exists(MANIFEST):
            return None
        return DatasetMetadata.from_dict(self._get_json(MANIFEST))

    def current(self) -> DatasetMetadata:
        manifest = self.read_manifest()
        if manifest is None:
            raise FileNotFoundError("no dataset version is published yet: run the ETL DAG first")
        return manifest

    def publish(self, metadata: DatasetMetadata) -> bool:
        """Point the manifest at this version (the last write). Returns whether it changed."""
        current = self.read_manifest()
        if current is not None and current.dataset_version == metadata.dataset_version:
            return False
        manifest = DatasetMetadata.from_dict(
            {
                **metadata.to_dict(),
                "published_at": _now(),
                "previous_version": current.dataset_version if current else None,
            }
        )
        self._put_json(MANIFEST, manifest.to_dict())
        return True

    def announced_version(self) -> str | None:
        """The last version whose dataset Asset event went out (None before the first)."""
        if not self.lake.exists(ANNOUNCED):
            return None
        return str(self._get_json(ANNOUNCED)["dataset_version"])

    def mark_announced(self, version: str) -> None:
        self._put_json(ANNOUNCED, {"dataset_version": version, "announced_at": _now()})

    def load_split(
        self, name: str, metadata: DatasetMetadata, spec: DatasetSpec, with_ids: bool = False
    ) -> pd.DataFrame:
        """A split ("train" or "test") of a version: the raw features plus the target (and the
        row id and source with `with_ids`)."""
        df = self.lake.read_parquet(metadata.keys[name])
        ids = [ROW_ID, SOURCE] if with_ids else []
        return df[[*ids, *spec.feature_names, spec.target]]

    def load_splits(
        self, metadata: DatasetMetadata, spec: DatasetSpec, with_ids: bool = False
    ) -> dict[str, pd.DataFrame]:
        return {name: self.load_split(name, metadata, spec, with_ids) for name in SPLIT_NAMES}

    # batch scoring

    def pending_batch_files(self, suffixes: tuple[str, ...]) -> list[str]:
        return sorted(k for k in self.lake.list(BATCH_INCOMING) if k.lower().endswith(suffixes))

    def read_batch_output(self, prefix: str, kind: str = "part") -> pd.DataFrame:
        """All `part` (or `rejected`) files of one output prefix, in order."""
        import pandas as pd

        keys = sorted(
            k
            for k in self.lake.list(prefix)
            if "/" not in k.removeprefix(prefix) and PurePosixPath(k).name.startswith(kind)
        )
        frames = [self.lake.read_parquet(k) for k in keys]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def latest_batch_output(self, key: str) -> str:
        """The output prefix of the newest finished run that scored input `key`."""
        done = [k for k in self.lake.list(batch_output_prefix(key)) if k.endswith("/_SUCCESS.json")]
        if not done:
            raise FileNotFoundError(f"no finished batch output for {key}")
        newest = max(done, key=lambda k: str(self._get_json(k).get("scored_at", "")))
        return newest.removesuffix("_SUCCESS.json")

    def drop_batch_file(self, name: str, data: bytes) -> str:
        return self.lake.put_atomic(f"{BATCH_INCOMING}{name}", data, "text/csv")

    # prediction log

    def write_prediction_log(self, frame: pd.DataFrame, now: datetime) -> str:
        return self.lake.write_parquet(dated_key(PREDICTION_LOG, now), frame)

    def read_dated(self, prefix: str, since: datetime, until: datetime) -> pd.DataFrame:
        """Every Parquet part under a date-partitioned prefix whose day overlaps [since, until]
        (rows are filtered by the caller on their own timestamps)."""
        import pandas as pd

        first, last = f"{prefix}date={since:%Y-%m-%d}/", f"{prefix}date={until:%Y-%m-%d}/~"
        keys = [k for k in self.lake.list(prefix) if first <= k <= last]
        frames = [self.lake.read_parquet(k) for k in sorted(keys)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    # feedback and monitoring

    def write_feedback(self, frame: pd.DataFrame, now: datetime) -> str:
        return self.lake.write_parquet(dated_key(FEEDBACK_RECEIVED, now), frame)

    def read_feedback(self) -> pd.DataFrame:
        """Every outcome ever received (the monitor merges duplicates)."""
        import pandas as pd

        frames = [self.lake.read_parquet(k) for k in sorted(self.lake.list(FEEDBACK_RECEIVED))]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def write_monitoring(self, window: str, summary: dict[str, Any], report_html: bytes) -> str:
        """The run's report first, its summary next, `latest.json` last: a reader that finds a
        summary finds its report, and `latest.json` only ever names a complete run."""
        prefix = f"{MONITORING}{window}/"
        self.lake.put_atomic(f"{prefix}report.html", report_html, "text/html")
        self._put_json(f"{prefix}summary.json", summary)
        self._put_json(MONITORING_LATEST, {**summary, "prefix": prefix})
        return prefix

    def latest_monitoring(self) -> dict[str, Any] | None:
        if not self.lake.exists(MONITORING_LATEST):
            return None
        return self._get_json(MONITORING_LATEST)

    def _put_json(self, key: str, data: dict[str, Any]) -> None:
        self.lake.put_atomic(key, json.dumps(data, indent=2).encode(), "application/json")

    def _get_json(self, key: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.lake.get(key))
        return data
