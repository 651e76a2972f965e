"""Behavioural tests of the model (Made-With-ML style), trained in-process on the shipped
Cleveland file: minimum functionality on clear cases, directional expectations, and
invariance to what must not change a prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlplatform.spec import SPEC
from mlplatform.training import fit, split_xy

SEED = 42
FAMILIES = {
    "logistic_regression": {"C": 1.0, "class_weight": None},
    "random_forest": {"n_estimators": 100, "max_depth": 5, "min_samples_leaf": 3},
}
HEALTHY = {  # a young woman, non-anginal pain, fit, clean angiogram
    "age": 35, "sex": 0, "cp": 3, "trestbps": 115, "chol": 190, "fbs": 0, "restecg": 0,
    "thalach": 185, "exang": 0, "oldpeak": 0.0, "slope": 1, "ca": 0, "thal": 3,
}  # fmt: skip
SICK = {  # an older man, asymptomatic pain, exercise angina, ST depression, three vessels
    "age": 66, "sex": 1, "cp": 4, "trestbps": 150, "chol": 290, "fbs": 1, "restecg": 2,
    "thalach": 110, "exang": 1, "oldpeak": 3.5, "slope": 2, "ca": 3, "thal": 7,
}  # fmt: skip


@pytest.fixture(scope="module", params=list(FAMILIES))
def model(request: pytest.FixtureRequest, cleveland: pd.DataFrame):  # type: ignore[no-untyped-def]
    return fit(request.param, FAMILIES[request.param], cleveland, SEED)


def risk(model, x: pd.DataFrame) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(model.predict_proba(x[list(SPEC.feature_names)])[:, 1])


def test_clear_cases_get_the_obvious_answer(model) -> None:  # type: ignore[no-untyped-def]
    cases = pd.DataFrame([HEALTHY, SICK], dtype=float)
    p = risk(model, cases)
    assert p[0] < 0.2 and p[1] > 0.8, f"healthy {p[0]:.2f}, sick {p[1]:.2f}"
    assert list(model.predict(cases[list(SPEC.feature_names)])) == [0, 1]


@pytest.mark.parametrize(
    ("feature", "change"),
    [("oldpeak", lambda v: v + 1.0), ("exang", lambda v: v * 0 + 1), ("ca", lambda v: v * 0 + 3)],
)
def test_more_of_a_risk_factor_does_not_lower_the_risk_on_average(  # type: ignore[no-untyped-def]
    model, cleveland: pd.DataFrame, feature: str, change
) -> None:
    x, _ = split_xy(cleveland)
    worse = x.copy()
    worse[feature] = change(worse[feature])
    before, after = risk(model, x), risk(model, worse)
    assert after.mean() >= before.mean(), f"{feature}: {before.mean():.3f} -> {after.mean():.3f}"


def test_row_order_batching_and_extra_columns_do_not_matter(  # type: ignore[no-untyped-def]
    model, cleveland: pd.DataFrame
) -> None:
    """A patient's risk depends on their 13 features only: not on the other rows sent with
    them, their position, the column order, or bookkeeping columns (row_id, source)."""
    x, _ = split_xy(cleveland)
    base = risk(model, x)
    shuffled = x.sample(frac=1.0, random_state=0)
    np.testing.assert_allclose(risk(model, shuffled), base[shuffled.index], rtol=0, atol=1e-12)
    one_by_one = np.concatenate([risk(model, x.iloc[[i]]) for i in range(0, len(x), 37)])
    np.testing.assert_allclose(one_by_one, base[::37], rtol=0, atol=1e-12)
    extra = x[list(reversed(x.columns))].assign(row_id="abc", source="va")
    np.testing.assert_allclose(
        model.predict_proba(extra)[:, 1], base, rtol=0, atol=1e-12
    )  # the Pipeline selects its columns by name
