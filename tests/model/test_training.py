"""Behavioural model tests (no services): the search is reproducible, every family in the
search space trains and can be stored, and the model works on raw features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlplatform.build import RawDelivery, build
from mlplatform.ingest import seed_file
from mlplatform.settings import Settings
from mlplatform.spec import SPEC
from mlplatform.training import evaluate, fit, search, split_xy

SEED = 42


@pytest.fixture(scope="module")
def splits() -> dict[str, pd.DataFrame]:
    raw = seed_file("cleveland", Settings()).read_bytes()
    built = build([RawDelivery("cleveland", "landing/cleveland/x", "-", raw)], SEED, 0.2)
    return {name: df[[*SPEC.feature_names, SPEC.target]] for name, df in built.splits.items()}


def test_same_data_and_seed_give_the_same_metrics(splits: dict[str, pd.DataFrame]) -> None:
    runs = []
    for _ in range(2):
        best = search(splits["train"], 3, SEED, 3)
        runs.append(
            (
                best.family,
                best.params,
                best.cv,
                evaluate(fit(best.family, best.params, splits["train"], SEED), splits["test"]),
            )
        )
    assert runs[0] == runs[1]


@pytest.mark.parametrize("family", list(SPEC.search_space))
def test_every_family_learns_and_is_stored_safely(
    family: str, splits: dict[str, pd.DataFrame], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    import skops.io

    from mlplatform.registry import SKOPS_TRUSTED_TYPES

    params = {
        "logistic_regression": {"C": 1.0, "class_weight": None},
        "svm": {"C": 1.0, "gamma": 0.05},
        "random_forest": {"n_estimators": 50, "max_depth": 4, "min_samples_leaf": 2},
        "gradient_boosting": {
            "learning_rate": 0.1,
            "max_iter": 50,
            "max_depth": 3,
            "l2_regularization": 1.0,
        },
    }[family]
    assert set(params) == set(SPEC.search_space[family])
    model = fit(family, params, splits["train"], SEED)
    # Better than always predicting the majority class (F1 0 or ~0.6 ROC AUC 0.5).
    assert evaluate(model, splits["test"])["test_roc_auc"] > 0.8
    path = tmp_path / "model.skops"
    skops.io.dump(model, path)
    assert not set(skops.io.get_untrusted_types(file=path)) - set(SKOPS_TRUSTED_TYPES)


def test_model_predicts_on_raw_features_with_gaps(splits: dict[str, pd.DataFrame]) -> None:
    model = fit("logistic_regression", {"C": 1.0, "class_weight": None}, splits["train"], SEED)
    x, _ = split_xy(splits["test"])
    gappy = x.head(5).copy()
    gappy.loc[:, ["ca", "thal", "chol"]] = np.nan  # imputed inside the Pipeline
    proba = model.predict_proba(gappy)[:, 1]
    assert proba.shape == (5,) and np.all((proba >= 0) & (proba <= 1))


def test_more_risk_factors_raise_the_predicted_risk(splits: dict[str, pd.DataFrame]) -> None:
    """Directional: exercise angina, many vessels and a reversible defect mean higher risk."""
    model = fit("logistic_regression", {"C": 1.0, "class_weight": None}, splits["train"], SEED)
    x, _ = split_xy(splits["test"])
    low, high = x.head(10).copy(), x.head(10).copy()
    low[["exang", "ca", "thal", "cp"]] = [0, 0, 3, 3]
    high[["exang", "ca", "thal", "cp"]] = [1, 3, 7, 4]
    assert np.all(model.predict_proba(high)[:, 1] > model.predict_proba(low)[:, 1])
