"""ETL from the landing zone to a versioned, validated, split dataset in the data lake.

extract -> validate -> clean -> split -> write Parquet under a new version prefix ->
publish the manifest last -> log the dataset version to MLflow.

Cleaning rule (also in the README):
1. `?` and the SPEC's "not measured" codes (cholesterol 0) become missing;
2. rows failing validation (text in a numeric column, out of range, unknown code) go to
   `quarantine/<version>/` with the reason;
3. exact duplicate rows (all 14 columns, across deliveries) are kept once;
4. the target is binary: `num > 0`;
5. a row missing more than `max_missing_features` of the 13 features is dropped (and
   quarantined with that reason); the remaining gaps stay missing and are imputed inside
   the model Pipeline, fitted on the training split only, so no test data leaks into it.

The dataset version is a digest of the clean content plus the split rule, so the same
deliveries always give the same version and a re-run publishes nothing new.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.dataset import SPEC
from mlplatform.ingest import Delivery, deliveries
from mlplatform.layout import CLEAN, MANIFEST, QUARANTINE, SPLITS
from mlplatform.settings import Settings, get_settings
from mlplatform.validation import REASON, parse_delivery, validate

ROW_ID = "row_id"
SOURCE = "source"
SPLIT_NAMES = ("train", "test")


@dataclass
class Built:
    """A dataset version held in memory, before it is written."""

    version: str
    clean: pd.DataFrame
    splits: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    counts: dict[str, int]
    deliveries: list[dict[str, Any]] = field(default_factory=list)


def frame_digest(df: pd.DataFrame) -> str:
    """Digest of a frame's content, independent of row order and of the Parquet writer."""
    ordered = df.sort_values(list(df.columns)).reset_index(drop=True)
    return hashlib.sha256(ordered.to_csv(index=False).encode()).hexdigest()


def row_ids(typed: pd.DataFrame) -> pd.Series:
    """A stable id per patient row: the digest of its 14 raw values."""
    lines = typed[list(SPEC.raw_columns)].to_csv(header=False, index=False, na_rep="")
    text = pd.Series(lines.splitlines(), index=typed.index)
    return text.map(lambda row: hashlib.sha256(row.encode()).hexdigest()[:16])


def assign_split(ids: pd.Series, seed: int, test_fraction: float) -> pd.Series:
    """Hash-based split: a row's split depends only on its id and the seed, never on which
    other rows exist, so it keeps its split in every later dataset version. The hash is
    independent of the label, so each class is split in the same proportion (stratified
    in expectation; `tests/data` checks the class balance of the test split)."""
    unit = ids.map(
        lambda i: int(hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:13], 16) / 16**13
    )
    return pd.Series(np.where(unit < test_fraction, "test", "train"), index=ids.index)


def extract(settings: Settings | None = None) -> list[tuple[Delivery, bytes]]:
    from mlplatform.lake import get_bytes, s3_client

    s = settings or get_settings()
    client = s3_client(s)
    found = deliveries(s)
    if not found:
        raise FileNotFoundError("the landing zone is empty: run `mlplatform deliver cleveland`")
    return [(d, get_bytes(s.DATA_REPO_BUCKET_NAME, d.key, client)) for d in found]


def validate_all(raw: list[tuple[Delivery, bytes]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate every delivery; raises DeliveryRejected on the first wrongly shaped one."""
    valid, rejected = [], []
    for delivery, data in raw:
        result = validate(parse_delivery(data, delivery.key), delivery.key)
        valid.append(result.valid.assign(**{SOURCE: delivery.source}))
        rejected.append(result.rejected.assign(**{SOURCE: delivery.source}))
    return pd.concat(valid, ignore_index=True), pd.concat(rejected, ignore_index=True)


def clean(valid: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Dedupe, binary target, drop rows with too many gaps. Returns (clean, dropped, n_dupes)."""
    df = valid.assign(**{ROW_ID: row_ids(valid)})
    before = len(df)
    df = df.drop_duplicates(subset=ROW_ID, keep="first")
    duplicates = before - len(df)
    df[SPEC.target] = (df[SPEC.raw_target] > 0).astype(int)
    missing = df[list(SPEC.feature_names)].isna().sum(axis=1)
    too_sparse = missing > SPEC.max_missing_features
    dropped = df[too_sparse].assign(
        **{
            REASON: missing[too_sparse].map(
                lambda n: (
                    f"{n} of {len(SPEC.feature_names)} features missing "
                    f"(more than {SPEC.max_missing_features})"
                )
            )
        }
    )
    columns = [ROW_ID, SOURCE, *SPEC.feature_names, SPEC.target]
    kept = df[~too_sparse][columns].sort_values(ROW_ID).reset_index(drop=True)
    return kept, dropped, duplicates


def build(raw: list[tuple[Delivery, bytes]], seed: int, test_fraction: float) -> Built:
    """Everything from raw deliveries to a dataset version, in memory (pure, no I/O)."""
    valid, rejected = validate_all(raw)
    kept, dropped, duplicates = clean(valid)
    split = assign_split(kept[ROW_ID], seed, test_fraction)
    splits = {name: kept[split == name].reset_index(drop=True) for name in SPLIT_NAMES}
    rule = f"seed={seed};test_fraction={test_fraction};max_missing={SPEC.max_missing_features}"
    digest = hashlib.sha256((frame_digest(kept) + rule).encode()).hexdigest()
    text = lambda df: df.astype("string")  # noqa: E731  quarantine keeps what was delivered
    quarantine = pd.concat(
        [text(rejected), text(dropped[[*SPEC.raw_columns, SOURCE, REASON]])], ignore_index=True
    )
    counts = {
        "rows_delivered": len(valid) + len(rejected),
        "rows_invalid": len(rejected),
        "rows_duplicate": duplicates,
        "rows_too_sparse": len(dropped),
        "rows_quarantined": len(quarantine),
        "rows_clean": len(kept),
        **{f"rows_{name}": len(df) for name, df in splits.items()},
    }
    delivered = [
        {
            "source": d.source,
            "key": d.key,
            "md5": d.md5,
            "rows": int((valid[SOURCE] == d.source).sum()),
        }
        for d, _ in raw
    ]
    return Built(f"v-{digest[:12]}", kept, splits, quarantine, counts, delivered)


def missing_stats(df: pd.DataFrame) -> dict[str, float]:
    return {f"missing_{c}": round(float(df[c].isna().mean()), 4) for c in SPEC.feature_names}


def version_keys(version: str) -> dict[str, str]:
    keys = {
        "clean": f"{CLEAN}{version}/data.parquet",
        "metadata": f"{CLEAN}{version}/dataset.json",
        "quarantine": f"{QUARANTINE}{version}/rows.parquet",
    }
    keys.update({name: f"{SPLITS}{version}/{name}.parquet" for name in SPLIT_NAMES})
    return keys


def write_version(built: Built, settings: Settings | None = None) -> dict[str, Any]:
    """Write the version under its own prefixes; its metadata last. Idempotent."""
    from mlplatform.lake import exists, get_bytes, put_bytes_atomic, s3_client, write_parquet_atomic

    s = settings or get_settings()
    client = s3_client(s)
    bucket = s.DATA_REPO_BUCKET_NAME
    keys = version_keys(built.version)
    if exists(bucket, keys["metadata"], client):  # already complete: same content, no-op
        metadata: dict[str, Any] = json.loads(get_bytes(bucket, keys["metadata"], client))
        return metadata
    write_parquet_atomic(built.clean, bucket, keys["clean"], client)
    for name, df in built.splits.items():
        write_parquet_atomic(df, bucket, keys[name], client)
    write_parquet_atomic(built.quarantine, bucket, keys["quarantine"], client)
    metadata = {
        "dataset_version": built.version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": SPEC.name,
        "bucket": bucket,
        "keys": keys,
        "digests": {name: frame_digest(df) for name, df in built.splits.items()},
        "counts": built.counts,
        "deliveries": built.deliveries,
        "seed": s.RANDOM_SEED,
        "test_fraction": s.TEST_FRACTION,
        "missing": missing_stats(built.clean),
    }
    put_bytes_atomic(bucket, keys["metadata"], json.dumps(metadata, indent=2).encode(), client)
    return metadata


def read_manifest(settings: Settings | None = None) -> dict[str, Any] | None:
    from mlplatform.lake import exists, get_bytes, s3_client

    s = settings or get_settings()
    client = s3_client(s)
    if not exists(s.DATA_REPO_BUCKET_NAME, MANIFEST, client):
        return None
    manifest: dict[str, Any] = json.loads(get_bytes(s.DATA_REPO_BUCKET_NAME, MANIFEST, client))
    return manifest


def read_version(version: str, settings: Settings | None = None) -> dict[str, Any]:
    """The metadata of any written dataset version (the manifest of the current one)."""
    from mlplatform.lake import get_bytes, s3_client

    s = settings or get_settings()
    key = version_keys(version)["metadata"]
    metadata: dict[str, Any] = json.loads(get_bytes(s.DATA_REPO_BUCKET_NAME, key, s3_client(s)))
    return metadata


def publish(metadata: dict[str, Any], settings: Settings | None = None) -> bool:
    """Point the manifest at this version (the last write). Returns whether it changed."""
    from mlplatform.lake import put_bytes_atomic

    s = settings or get_settings()
    current = read_manifest(s)
    if current is not None and current["dataset_version"] == metadata["dataset_version"]:
        return False
    manifest = {
        **metadata,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "previous_version": current["dataset_version"] if current else None,
    }
    put_bytes_atomic(s.DATA_REPO_BUCKET_NAME, MANIFEST, json.dumps(manifest, indent=2).encode())
    return True


def _features_and_target(df: pd.DataFrame) -> pd.DataFrame:
    return df[[*SPEC.feature_names, SPEC.target]]


def load_split(
    name: str, manifest: dict[str, Any] | None = None, settings: Settings | None = None
) -> pd.DataFrame:
    """A split ("train" or "test") of a dataset version: the 13 raw features plus the target."""
    from mlplatform.lake import read_parquet, s3_client

    s = settings or get_settings()
    manifest = manifest or read_manifest(s)
    if manifest is None:
        raise FileNotFoundError("no dataset version is published yet: run the ETL DAG first")
    return _features_and_target(
        read_parquet(manifest["bucket"], manifest["keys"][name], s3_client(s))
    )


def load_current_split(name: str, settings: Settings | None = None) -> pd.DataFrame:
    """The current version's split, as the serving side and the notebook use it."""
    return load_split(name, None, settings)


def mlflow_datasets(metadata: dict[str, Any], frames: dict[str, pd.DataFrame]) -> list[Any]:
    """mlflow.data datasets of the splits, with their S3 source and content digest."""
    from mlflow.data.pandas_dataset import from_pandas

    return [
        from_pandas(
            frames[name],
            source=f"s3://{metadata['bucket']}/{metadata['keys'][name]}",
            targets=SPEC.target,
            name=f"{SPEC.name}-{metadata['dataset_version']}-{name}",
            digest=metadata["digests"][name][:12],
        )
        for name in SPLIT_NAMES
    ]


def log_inputs(metadata: dict[str, Any], frames: dict[str, pd.DataFrame]) -> None:
    """Attach the splits as inputs of the active MLflow run (training, evaluation)."""
    import mlflow

    for name, dataset in zip(SPLIT_NAMES, mlflow_datasets(metadata, frames), strict=True):
        mlflow.log_input(dataset, context="training" if name == "train" else "evaluation")


def log_to_mlflow(metadata: dict[str, Any], settings: Settings | None = None) -> str:
    """One MLflow run per dataset version: inputs, row counts, missing-value stats. Idempotent."""
    import mlflow

    from mlplatform.registry import configure

    s = settings or get_settings()
    configure(s)
    experiment = mlflow.set_experiment(s.MLFLOW_EXPERIMENT_NAME)
    version = metadata["dataset_version"]
    found = mlflow.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.dataset_version = '{version}' and tags.`mlplatform.kind` = 'etl'",
        output_format="list",
    )
    if found:
        return str(found[0].info.run_id)
    # Rows as stored in the lake (with ids and sources), so the digests match what is logged.
    from mlplatform.lake import read_parquet, s3_client

    client = s3_client(s)
    frames = {
        name: read_parquet(metadata["bucket"], metadata["keys"][name], client)
        for name in SPLIT_NAMES
    }
    with mlflow.start_run(
        run_name=f"etl {version}",
        tags={"mlplatform.kind": "etl", "dataset_version": version},
    ) as run:
        log_inputs(metadata, frames)
        mlflow.log_params(
            {
                "dataset_version": version,
                "deliveries": ",".join(d["source"] for d in metadata["deliveries"]),
                "seed": metadata["seed"],
                "test_fraction": metadata["test_fraction"],
                "max_missing_features": SPEC.max_missing_features,
            }
        )
        mlflow.log_metrics({**metadata["counts"], **metadata["missing"]})
        for name, df in frames.items():
            mlflow.log_metric(f"positive_rate_{name}", float(df[SPEC.target].mean()))
        mlflow.log_dict(metadata, "dataset.json")
        return str(run.info.run_id)
