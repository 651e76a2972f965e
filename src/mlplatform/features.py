"""The model: one sklearn Pipeline that holds its own preprocessing.

Serving calls `predict` on the raw features, so imputation, scaling and
one-hot encoding are never written again outside this module.
"""

from __future__ import annotations

from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlplatform.dataset import DatasetSpec
from mlplatform.spec import SPEC


def build_preprocessor(spec: DatasetSpec = SPEC) -> ColumnTransformer:
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    return ColumnTransformer(
        [
            ("numeric", numeric, list(spec.numeric_names)),
            ("categorical", categorical, list(spec.categorical_names)),
        ],
        verbose_feature_names_out=False,
    )


def build_pipeline(classifier: Any, spec: DatasetSpec = SPEC) -> Pipeline:
    return Pipeline([("preprocess", build_preprocessor(spec)), ("model", classifier)])
