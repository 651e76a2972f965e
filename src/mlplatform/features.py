"""The model: one sklearn Pipeline that holds its own preprocessing.

Serving calls `predict` on the raw features, so imputation, scaling and one-hot encoding
are never written again outside this module. The rule for rows with too many unknown
features is here too, for cleaning and serving alike.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlplatform.dataset import DatasetSpec
from mlplatform.spec import SPEC


def build_preprocessor(
    spec: DatasetSpec = SPEC, missing_indicators: bool = False
) -> ColumnTransformer:
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
        ("numeric", numeric, list(spec.numeric_names)),
        ("categorical", categorical, list(spec.categorical_names)),
    ]
    if missing_indicators:
        # A feature never missing in training gets no column; a new gap at serving is imputed.
        indicator = MissingIndicator(features="missing-only", error_on_new=False)
        branches.append(("missing", indicator, list(spec.feature_names)))
    return ColumnTransformer(branches, verbose_feature_names_out=False)


def build_pipeline(
    classifier: Any, spec: DatasetSpec = SPEC, missing_indicators: bool = False
) -> Pipeline:
    return Pipeline(
        [("preprocess", build_preprocessor(spec, missing_indicators)), ("model", classifier)]
    )


def missing_counts(frame: pd.DataFrame, spec: DatasetSpec = SPEC) -> pd.Series:
    """Unknown features per row; a feature column absent from `frame` counts as unknown."""
    return frame.reindex(columns=list(spec.feature_names)).isna().sum(axis=1)


def too_many_missing(
    frame: pd.DataFrame, max_missing: int | None = None, spec: DatasetSpec = SPEC
) -> pd.Series:
    """True for rows with more than `max_missing` (the spec's `max_missing_features`) unknown
    features: training drops them, so serving must refuse them rather than answer from
    imputed values alone."""
    limit = spec.max_missing_features if max_missing is None else max_missing
    return missing_counts(frame, spec) > limit


def too_many_missing_reason(
    n_missing: int, max_missing: int | None = None, spec: DatasetSpec = SPEC
) -> str:
    """The one wording of the rule, for the quarantine and for a refused prediction."""
    limit = spec.max_missing_features if max_missing is None else max_missing
    return f"{n_missing} of {len(spec.feature_names)} features missing (more than {limit})"
