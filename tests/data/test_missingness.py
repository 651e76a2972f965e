"""The missing-value rule (one function for cleaning and serving) and missing indicators."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlplatform.build import build, validate_all
from mlplatform.features import (
    build_pipeline,
    missing_counts,
    too_many_missing,
    too_many_missing_reason,
)
from mlplatform.spec import SPEC

FEATURES = list(SPEC.feature_names)


def test_rule_counts_unknown_and_absent_features() -> None:
    row = dict.fromkeys(FEATURES, 1.0)
    frame = pd.DataFrame(
        [row, {**row, "ca": np.nan, "thal": np.nan}, dict.fromkeys(FEATURES, np.nan)]
    )
    assert list(missing_counts(frame)) == [0, 2, 13]
    assert list(too_many_missing(frame, 2)) == [False, False, True]
    assert list(too_many_missing(frame, 1)) == [False, True, True]
    # A column the caller did not send at all counts as unknown (serving's partial rows).
    partial = frame.drop(columns=["age", "sex", "cp"])
    assert list(missing_counts(partial)) == [3, 5, 13]
    assert too_many_missing_reason(5, 4) == "5 of 13 features missing (more than 4)"


def test_rule_is_the_one_the_cleaning_applies(uci: dict[str, bytes], delivery) -> None:  # type: ignore[no-untyped-def]
    raw = [delivery(s, uci[s]) for s in SPEC.deliveries]
    valid, _ = validate_all(raw)
    built = build(raw, 42, 0.2)
    sparse = too_many_missing(valid)
    assert sparse.sum() > 0  # the shipped files do hold such rows
    assert built.counts["rows_too_sparse"] == int(sparse.sum())
    reasons = set(built.quarantine["reason"])
    for n in missing_counts(valid)[sparse].unique():
        assert too_many_missing_reason(int(n)) in reasons


@pytest.fixture(scope="module")
def hospitals(uci: dict[str, bytes], delivery) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    return build([delivery(s, uci[s]) for s in SPEC.deliveries], 42, 0.2).clean


def test_missing_indicators_add_one_column_per_gappy_feature(hospitals: pd.DataFrame) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = hospitals[FEATURES], hospitals[SPEC.target]
    plain = build_pipeline(LogisticRegression(max_iter=5000)).fit(x, y)
    flagged = build_pipeline(LogisticRegression(max_iter=5000), missing_indicators=True).fit(x, y)
    names = list(flagged[:-1].get_feature_names_out())
    gappy = [f for f in FEATURES if x[f].isna().any()]
    assert names[: len(plain[:-1].get_feature_names_out())] == list(
        plain[:-1].get_feature_names_out()
    )
    assert [n for n in names if n.startswith("missingindicator_")] == [
        f"missingindicator_{f}" for f in gappy
    ]
    # The indicator carries what imputation hides: a missing `ca` is itself a risk signal.
    row = x[x["ca"].notna()].head(50)
    gap = row.assign(ca=np.nan)
    assert not np.allclose(flagged.predict_proba(gap), flagged.predict_proba(row.assign(ca=0)))
    # A gap in a feature never missing in training is imputed, not an error.
    never = [f for f in FEATURES if f not in gappy]
    if never:
        flagged.predict_proba(row.assign(**{never[0]: np.nan}))


def test_missing_indicators_store_safely_with_skops(hospitals: pd.DataFrame) -> None:
    import skops.io
    from sklearn.linear_model import LogisticRegression

    from mlplatform.registry import SKOPS_TRUSTED_TYPES

    x, y = hospitals[FEATURES], hospitals[SPEC.target]
    model = build_pipeline(LogisticRegression(max_iter=5000), missing_indicators=True).fit(x, y)
    blob = skops.io.dumps(model)
    assert not set(skops.io.get_untrusted_types(data=blob)) - set(SKOPS_TRUSTED_TYPES)
