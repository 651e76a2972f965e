"""Drift on the shipped UCI data: in-distribution windows do not alarm, Switzerland and VA
patients do, too few rows is an explicit result; the summary and its gauges."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlplatform.build import build
from mlplatform.monitoring.drift import (
    EMPTY_IN_WINDOW,
    compute_drift,
    reference_frame,
    with_predictions,
)
from mlplatform.monitoring.feedback import (
    Outcome,
    merge_outcomes,
    outcomes_frame,
)
from mlplatform.monitoring.policy import Thresholds
from mlplatform.monitoring.summary import (
    MonitoringSummary,
    exposition,
    prometheus_gauges,
    summarise,
    window_by_version,
)
from mlplatform.prediction_ids import new_ids
from mlplatform.spec import SPEC
from mlplatform.training import fit

SEED = 42
T = Thresholds()
END = datetime(2026, 11, 29, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def world(uci: dict[str, bytes], delivery) -> dict[str, object]:  # type: ignore[no-untyped-def]
    cleveland = build([delivery("cleveland", uci["cleveland"])], SEED, 0.2)
    train = cleveland.splits["train"]
    model = fit("logistic_regression", {"C": 1.0, "class_weight": None}, train, SEED)
    others = build([delivery(s, uci[s]) for s in ("switzerland", "va")], SEED, 0.2).clean
    return {
        "model": model,
        "train": train,
        "test": cleveland.splits["test"],
        "reference": reference_frame(model, train),
        "others": others,
    }


def served(world, rows: pd.DataFrame) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Rows as the prediction log holds them: features, the model's outputs, an id."""
    return with_predictions(world["model"], rows.reset_index(drop=True)).assign(
        prediction_id=new_ids(len(rows), b"test"),
        model_version="3",
        timestamp=END - timedelta(minutes=5),
    )


def summary_of(world, window: pd.DataFrame, **options) -> tuple[MonitoringSummary, str | None]:  # type: ignore[no-untyped-def]
    """The monitoring of version "3" over the hour before END."""
    return summarise(
        window,
        world["reference"],
        model_version="3",
        window_start=END - timedelta(hours=1),
        window_end=END,
        thresholds=T,
        **options,
    )


@pytest.mark.parametrize("seed", range(3))
def test_in_distribution_windows_do_not_alarm(world, seed: int) -> None:  # type: ignore[no-untyped-def]
    window = served(world, world["train"].sample(500, replace=True, random_state=seed))
    result = compute_drift(window, world["reference"], T.min_rows, T.drift_share_threshold, False)
    assert result.data.status == "ok" and result.data.tested_features == 13
    assert result.data.drift_share is not None and result.data.drift_share < T.drift_share_threshold
    assert not result.prediction.drifted


def test_switzerland_and_va_patients_alarm(world) -> None:  # type: ignore[no-untyped-def]
    window = served(world, world["others"].sample(500, replace=True, random_state=0))
    result = compute_drift(window, world["reference"], T.min_rows, T.drift_share_threshold)
    assert result.data.drift_share is not None and result.data.drift_share >= 0.5
    assert {"cp", "sex", "thalach"} <= set(result.data.drifted_features)
    assert result.prediction.drifted  # more patients look ill to the model
    assert result.data.missing_shares["chol"]["current"] > 0.3  # cholesterol 0 is missing
    assert result.html is not None and result.html.lstrip().lower().startswith("<!doctype html")


def test_out_of_fold_reference_keeps_unseen_patients_from_looking_like_prediction_drift(
    world,
) -> None:  # type: ignore[no-untyped-def]
    params = {"n_estimators": 50, "max_depth": 10, "min_samples_leaf": 1}
    forest = fit("random_forest", params, world["train"], SEED)  # overconfident in-sample
    unseen = with_predictions(forest, world["test"])
    for folds, drifted in ((0, True), (5, False)):
        reference = reference_frame(forest, world["train"], folds=folds)
        result = compute_drift(unseen, reference, 1, 0.3, html=False)
        assert result.data.drift_share == 0.0  # the patients themselves are in distribution
        assert result.prediction.probability is not None
        assert result.prediction.probability.drifted is drifted


def test_a_feature_missing_in_the_whole_window_counts_as_drifted(world) -> None:  # type: ignore[no-untyped-def]
    rows = world["train"].sample(300, replace=True, random_state=1).assign(chol=np.nan)
    result = compute_drift(served(world, rows), world["reference"], 100, 0.3, False)
    chol = next(c for c in result.data.columns if c.column == "chol")
    assert (chol.method, chol.drifted, chol.missing_share_current) == (EMPTY_IN_WINDOW, True, 1.0)


def test_too_few_rows_is_insufficient_data_not_an_alarm(world) -> None:  # type: ignore[no-untyped-def]
    window = served(world, world["others"].head(T.min_rows - 1))  # shifted, but too few
    summary, html = summary_of(world, window, champion_f1=0.8)
    assert (summary.status, summary.drift.drift_share, html) == ("insufficient_data", None, None)
    assert not summary.decision.degraded and summary.performance.f1 is None
    names = {g.name for g in prometheus_gauges([summary], END)}
    assert "monitoring_drift_share" not in names and "monitoring_degraded" in names


def test_summary_of_a_shifted_window_with_outcomes(world) -> None:  # type: ignore[no-untyped-def]
    rows = world["others"].sample(400, replace=True, random_state=2)
    log = served(world, rows)
    log.loc[:9, "timestamp"] = END - timedelta(days=2)  # outside the window
    window = window_by_version(log, END - timedelta(hours=1), END)["3"]
    assert len(window) == 390
    outcomes = merge_outcomes(
        None,
        outcomes_frame(
            [
                Outcome(i, int(y))
                for i, y in zip(window.prediction_id, rows[SPEC.target].iloc[10:], strict=True)
            ],
            END,
        ),
    ).outcomes
    # A champion F1 high enough that the performance branch fires too.
    summary, _ = summary_of(world, window, champion_f1=0.95, outcomes=outcomes, html=False)
    assert summary.status == "degraded" and summary.decision.branches == ["drift", "performance"]
    assert summary.performance.labelled_rows == 390 and summary.performance.f1 is not None
    again = MonitoringSummary.from_dict(json.loads(json.dumps(summary.to_dict())))
    assert again == summary
    text = exposition(prometheus_gauges([summary], END))
    assert 'monitoring_degraded{model_version="3"} 1.0' in text
    assert 'monitoring_labelled_rows{model_version="3"} 390.0' in text
    assert f"monitoring_last_run_timestamp_seconds {END.timestamp()!r}" in text
    assert text.count("# TYPE monitoring_live_f1 gauge") == 1


def test_reference_fits_each_fold_once_with_cross_val_predicts_answers(world) -> None:  # type: ignore[no-untyped-def]
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    model, train = world["model"], world["train"]
    x, y = train[list(SPEC.feature_names)], train[SPEC.target].astype(int)
    split = StratifiedKFold(5, shuffle=True, random_state=SEED)
    reference = reference_frame(model, train, 5, SEED)
    proba = cross_val_predict(clone(model), x, y, cv=split, method="predict_proba")[:, 1]
    labels = cross_val_predict(clone(model), x, y, cv=split, method="predict")
    np.testing.assert_array_equal(reference["label"], labels)
    np.testing.assert_allclose(reference["probability"], proba, rtol=0, atol=1e-12)


def test_the_reference_training_logs_is_the_one_monitoring_would_compute(world) -> None:  # type: ignore[no-untyped-def]
    """refit logs its out-of-fold predictions as the reference (REFERENCE_ARTIFACT); with the
    training's folds and seed they are what `reference_frame` computes for the decision model
    (calibration and threshold inside), so monitoring need not refit it."""
    from mlplatform.monitoring.drift import predictions_frame
    from mlplatform.training import fit_decision_model

    train = world["train"]
    for family, params in (
        ("logistic_regression", {"C": 1.0, "class_weight": None}),
        ("random_forest", {"n_estimators": 30, "max_depth": 5, "min_samples_leaf": 2}),
    ):
        model = fit_decision_model(family, params, train, SEED, 5, "max_f1")
        logged = predictions_frame(
            train, (model.oof_proba >= model.threshold).astype(int), model.oof_proba
        )
        computed = reference_frame(model.pipeline, train, 5, SEED)
        pd.testing.assert_frame_equal(logged, computed, check_exact=False, rtol=0, atol=1e-12)
