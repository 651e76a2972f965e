"""Synthetic rows drawn from the spec's ranges and codes: the batch demo's patients and the
extra rows of the ONNX parity check. Never used to train a real model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlplatform.dataset import DatasetSpec
from mlplatform.spec import SPEC


def synthetic_features(
    n: int, seed: int = 0, missing_rate: float = 0.0, spec: DatasetSpec = SPEC
) -> pd.DataFrame:
    """`n` valid rows (float columns in feature order); `missing_rate` of values NaN."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for f in spec.numeric:
        values = rng.uniform(f.minimum, f.maximum, n)
        cols[f.name] = np.round(values) if f.integer else np.round(values, 1)
    for c in spec.categorical:
        cols[c.name] = rng.choice(np.array(list(c.codes), dtype=np.float64), n)
    frame = pd.DataFrame(cols)[list(spec.feature_names)]
    if missing_rate:
        frame = frame.mask(rng.random(frame.shape) < missing_rate)
    return frame
