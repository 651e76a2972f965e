"""A train/test split that is stratified AND stable across dataset versions.

1. A row that had a split in the previous version keeps it (so a model's test rows are
   never trained on by its successor).
2. The other rows fill, within each (class, source) group, the test quota of that group:
   each class sends `round(n_class * test_fraction)` rows to test, shared among its
   sources by largest remainder, so every (class, source) group is within one row of its
   exact share. Which new rows go is decided by a seeded hash of their id: independent of
   row order and of which other rows exist.

Without a previous version, each class's test share is exact to within half a row:
|test_c - n_c * f| <= 0.5, so the train/test positive-rate gap is at most about
1 / min(n_test, n_train) (tests/data/test_splitting.py checks it over 200 seeds).
With a previous version, old rows cannot move: new rows make up the quotas as far as
they can, so a group whose old rows already overfill its test quota stays overfull.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

TRAIN, TEST = "train", "test"


def hash_unit(seed: int, row_id: Any) -> float:
    """A uniform number in [0, 1) fixed by the seed and the row id alone."""
    return int(hashlib.sha256(f"{seed}:{row_id}".encode()).hexdigest()[:13], 16) / 16**13


def _quotas(sizes: pd.Series, test_fraction: float) -> pd.Series:
    """Test rows per source within one class: the class total rounded, then shared out by
    largest remainder (ties by source name), so no source is off by a whole row or more."""
    exact = sizes * test_fraction
    base = np.floor(exact).astype(int)
    left = round(float(exact.sum())) - int(base.sum())
    remainder = (exact - base).sort_index().sort_values(ascending=False, kind="stable")
    base[remainder.index[:left]] += 1
    return base


def assign_split(
    ids: pd.Series,
    labels: pd.Series,
    strata: pd.Series | None,
    seed: int,
    test_fraction: float,
    previous: Mapping[Any, str] | None = None,
) -> pd.Series:
    """ "train" or "test" per row (index of `ids`); `previous` maps row id to its old split."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    if not ids.is_unique:
        raise ValueError("row ids must be unique to give each row one split")
    previous = previous or {}
    bad = {v for v in previous.values() if v not in (TRAIN, TEST)}
    if bad:
        raise ValueError(f"previous splits must be {TRAIN!r} or {TEST!r}, found {sorted(bad)}")
    frame = pd.DataFrame(
        {
            "id": ids.to_numpy(),
            "label": labels.to_numpy(),
            "stratum": "all" if strata is None else strata.astype(str).to_numpy(),
            "old": ids.map(lambda i: previous.get(i)).to_numpy(),
        },
        index=ids.index,
    )
    split = frame["old"].copy()
    for _, group in frame.groupby("label", sort=True):
        quotas = _quotas(group.groupby("stratum").size(), test_fraction)
        for stratum, rows in group.groupby("stratum"):
            new = rows[rows["old"].isna()]
            if new.empty:
                continue
            already = int((rows["old"] == TEST).sum())
            take = int(np.clip(quotas[stratum] - already, 0, len(new)))
            order = new["id"].map(lambda i: hash_unit(seed, i)).sort_values(kind="stable")
            split[order.index] = TRAIN
            split[order.index[:take]] = TEST
    return split.astype(str)
