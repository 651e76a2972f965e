"""The shipped Cleveland file, parsed and validated by the package, as model tests use it."""

from __future__ import annotations

import pandas as pd
import pytest

from mlplatform.features import too_many_missing
from mlplatform.ingest import seed_file
from mlplatform.settings import Settings
from mlplatform.spec import SPEC
from mlplatform.validation import parse_delivery, validate


@pytest.fixture(scope="session")
def cleveland() -> pd.DataFrame:
    """The 13 features and the binary target of every valid, not too sparse Cleveland row."""
    raw = seed_file("cleveland", Settings()).read_bytes()
    valid = validate(parse_delivery(raw, "cleveland"), "cleveland").valid
    valid = valid[~too_many_missing(valid)]
    target = (valid[SPEC.raw_target] > 0).astype(int).rename(SPEC.target)
    return pd.concat([valid[list(SPEC.feature_names)], target], axis=1).reset_index(drop=True)
