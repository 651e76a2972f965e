"""The dataset build: from raw deliveries to a cleaned, split dataset version, in memory.

validate -> clean -> split -> version digest. Pure: no I/O (the ETL reads the deliveries
through `mlplatform.ingest` and writes the version through `mlplatform.store`).

Cleaning rule (also in the README):
1. the spec's missing marker (`?`) and its "not measured" codes (cholesterol 0) are missing;
2. rows failing validation (text in a numeric column, out of range, unknown code) go to
   the quarantine with the reason;
3. exact duplicate rows (all raw columns, across deliveries) are kept once;
4. the target is binary: raw target > 0;
5. a row missing more than `max_missing_features` features is dropped (and quarantined with
   that reason); the remaining gaps stay missing and are imputed inside the model Pipeline,
   fitted on the training split only, so no test data leaks into it.

Split rule (mlplatform.splitting, also in the README): a row of the previous published
version keeps its split; new rows fill each (class, source) group's test quota, in the
order of a seeded hash of their id.

The dataset version is a digest of the clean content, the rules and the split assignment,
so the same deliveries on the same previous version always give the same version and a
re-run publishes nothing new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlplatform.dataset import DatasetSpec
from mlplatform.features import missing_counts, too_many_missing, too_many_missing_reason
from mlplatform.spec import SPEC
from mlplatform.splitting import assign_split
from mlplatform.store import ROW_ID, SOURCE, SPLIT_NAMES
from mlplatform.validation import REASON, parse_delivery, validate


@dataclass(frozen=True)
class RawDelivery:
    """One delivered file: where it came from, its digest and its bytes."""

    source: str
    key: str
    md5: str
    data: bytes = field(repr=False)


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


def row_ids(typed: pd.DataFrame, spec: DatasetSpec = SPEC) -> pd.Series:
    """A stable id per row: the digest of its raw values."""
    lines = typed[list(spec.raw_columns)].to_csv(header=False, index=False, na_rep="")
    text = pd.Series(lines.splitlines(), index=typed.index)
    return text.map(lambda row: hashlib.sha256(row.encode()).hexdigest()[:16])


def validate_all(
    raw: list[RawDelivery], spec: DatasetSpec = SPEC
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate every delivery; raises DeliveryRejected on the first wrongly shaped one."""
    valid, rejected = [], []
    for delivery in raw:
        result = validate(parse_delivery(delivery.data, delivery.key, spec), delivery.key, spec)
        valid.append(result.valid.assign(**{SOURCE: delivery.source}))
        rejected.append(result.rejected.assign(**{SOURCE: delivery.source}))
    return pd.concat(valid, ignore_index=True), pd.concat(rejected, ignore_index=True)


def clean(valid: pd.DataFrame, spec: DatasetSpec = SPEC) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Dedupe, binary target, drop rows with too many gaps. Returns (clean, dropped, n_dupes)."""
    df = valid.assign(**{ROW_ID: row_ids(valid, spec)})
    before = len(df)
    df = df.drop_duplicates(subset=ROW_ID, keep="first")
    duplicates = before - len(df)
    df[spec.target] = (df[spec.raw_target] > 0).astype(int)
    sparse = too_many_missing(df, spec=spec)
    missing = missing_counts(df, spec)
    dropped = df[sparse].assign(
        **{REASON: missing[sparse].map(lambda n: too_many_missing_reason(int(n), spec=spec))}
    )
    columns = [ROW_ID, SOURCE, *spec.feature_names, spec.target]
    kept = df[~sparse][columns].sort_values(ROW_ID).reset_index(drop=True)
    return kept, dropped, duplicates


SPLIT_RULE = "stratified-by-class-and-source;stable-from-previous;hash-ordered"


def build(
    raw: list[RawDelivery],
    seed: int,
    test_fraction: float,
    spec: DatasetSpec = SPEC,
    previous: Mapping[str, str] | None = None,
) -> Built:
    """Everything from raw deliveries to a dataset version, in memory. `previous` maps the
    row ids of the previous published version to their split (mlplatform.splitting)."""
    valid, rejected = validate_all(raw, spec)
    kept, dropped, duplicates = clean(valid, spec)
    split = assign_split(
        kept[ROW_ID], kept[spec.target], kept[SOURCE], seed, test_fraction, previous
    )
    splits = {name: kept[split == name].reset_index(drop=True) for name in SPLIT_NAMES}
    rule = (
        f"seed={seed};test_fraction={test_fraction};max_missing={spec.max_missing_features};"
        f"split={SPLIT_RULE}"
    )
    # The assignment itself is part of the version: the same rows split differently (another
    # history of versions) are another dataset version, never the same one.
    assignment = frame_digest(pd.DataFrame({ROW_ID: kept[ROW_ID], "split": split}))
    digest = hashlib.sha256((frame_digest(kept) + rule + assignment).encode()).hexdigest()
    text = lambda df: df.astype("string")  # noqa: E731  quarantine keeps what was delivered
    quarantine = pd.concat(
        [text(rejected), text(dropped[[*spec.raw_columns, SOURCE, REASON]])], ignore_index=True
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
        for d in raw
    ]
    return Built(f"v-{digest[:12]}", kept, splits, quarantine, counts, delivered)


def missing_stats(df: pd.DataFrame, spec: DatasetSpec = SPEC) -> dict[str, float]:
    return {f"missing_{c}": round(float(df[c].isna().mean()), 4) for c in spec.feature_names}
