"""The feature contract of the model: which raw features it takes, in which order, which
values are valid, and the label names. Built from the dataset spec, so serving, batch and
the web form validate exactly the same way."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlplatform.dataset import CategoricalFeature, DatasetSpec
from mlplatform.features import too_many_missing_reason
from mlplatform.spec import SPEC

FEATURES: tuple[str, ...] = SPEC.feature_names
LABEL_NAMES: dict[int, str] = SPEC.label_names


def invalid_reasons(frame: pd.DataFrame, spec: DatasetSpec = SPEC) -> pd.Series:
    """Per row, why it is invalid ('' when valid): the API's rules, vectorised for batch files.

    NaN is allowed (unknown, imputed) up to the spec's `max_missing_features`, the rule
    training applies; a value that is not a number is not. The checks are numpy masks over
    whole columns; text is built only for the (few) rows that fail.
    """
    n = len(frame)
    problems: list[tuple[np.ndarray, str]] = []  # (rows at fault, reason), in reporting order
    unknown = np.zeros(n, dtype=np.int64)
    for feature in spec.features:
        name = feature.name
        if name not in frame.columns:
            problems.append((np.ones(n, dtype=bool), f"{name}: missing column"))
            continue
        raw = frame[name]
        values = numeric(raw)
        present = ~np.isnan(values)
        unknown += ~present
        problems.append((~present & raw.notna().to_numpy(), f"{name}: not a number"))
        if isinstance(feature, CategoricalFeature):
            codes = list(feature.codes)
            problems.append((present & ~np.isin(values, codes), f"{name}: not one of {codes}"))
            continue
        problems.append((present & np.isinf(values), f"{name}: infinite"))
        with np.errstate(invalid="ignore"):
            out = present & ((values < feature.minimum) | (values > feature.maximum))
            problems.append((out, f"{name}: outside {feature.minimum:g}..{feature.maximum:g}"))
            if feature.integer:
                problems.append((present & ~out & (values % 1 != 0), f"{name}: not an integer"))
    sparse = unknown > spec.max_missing_features
    reasons = np.full(n, "", dtype=object)
    bad = np.logical_or.reduce([mask for mask, _ in problems] + [sparse])
    for row in np.flatnonzero(bad):
        texts = [text for mask, text in problems if mask[row]]
        if sparse[row]:
            texts.append(too_many_missing_reason(int(unknown[row]), spec=spec))
        reasons[row] = "; ".join(texts)
    return pd.Series(reasons, index=frame.index, dtype=object)


def numeric(column: pd.Series) -> np.ndarray:
    """A column as float64, NaN where it is missing or not a number (cheap when numeric)."""
    if column.dtype.kind in "fiu":
        return column.to_numpy(np.float64, na_value=np.nan)
    return pd.to_numeric(column, errors="coerce").to_numpy(np.float64, na_value=np.nan)


def features_matrix(frame: pd.DataFrame, spec: DatasetSpec = SPEC) -> np.ndarray:
    """The feature columns of a (validated) frame as float64, NaN for unknown."""
    return np.column_stack([numeric(frame[name]) for name in spec.feature_names])
