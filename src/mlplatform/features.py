"""The model: one sklearn Pipeline that holds its own preprocessing.

Serving calls `predict` on the raw 13 features, so imputation, scaling and
one-hot encoding are never written again outside this module. The rule for rows
with too many unknown features is here too, for cleaning and serving alike.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlplatform.dataset import SPEC


def build_preprocessor(missing_indicators: bool = False) -> ColumnTransformer:
    """Impute, scale, one-hot encode; with `missing_indicators`, also one 0/1 column per
    feature that had gaps in training, because a gap carries information (rows missing
    `ca` are mostly sick) that imputing a typical value erases."""
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    branches: list[tuple[str, Any, list[str]]] = [
        ("numeric", numeric, list(SPEC.numeric_names)),
        ("categorical", categorical, list(SPEC.categorical_names)),
    ]
    if missing_indicators:
        # A feature never missing in training gets no column; a new gap at serving is imputed.
        indicator = MissingIndicator(features="missing-only", error_on_new=False)
        branches.append(("missing", indicator, list(SPEC.feature_names)))
    return ColumnTransformer(branches, verbose_feature_names_out=False)


def build_pipeline(classifier: Any, missing_indicators: bool = False) -> Pipeline:
    return Pipeline([("preprocess", build_preprocessor(missing_indicators)), ("model", classifier)])


def missing_counts(frame: pd.DataFrame) -> pd.Series:
    """Unknown features per row; a feature column absent from `frame` counts as unknown."""
    return frame.reindex(columns=list(SPEC.feature_names)).isna().sum(axis=1)


def too_many_missing(
    frame: pd.DataFrame, max_missing: int = SPEC.max_missing_features
) -> pd.Series:
    """True for rows with more than `max_missing` unknown features: training drops them,
    so serving must refuse them rather than answer from imputed values alone."""
    return missing_counts(frame) > max_missing


def too_many_missing_reason(n_missing: int, max_missing: int = SPEC.max_missing_features) -> str:
    """The one wording of the rule, for the quarantine and for a refused prediction."""
    return f"{n_missing} of {len(SPEC.feature_names)} features missing (more than {max_missing})"
