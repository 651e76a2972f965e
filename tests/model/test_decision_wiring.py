"""The decision pieces wired into training and serving: a model fitted with its calibration
and threshold, its assessment with intervals and per-hospital tables, the model card, the
card facts /model reads from version tags, and the threshold-aware ONNX predictor."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlplatform.evaluation import ALL
from mlplatform.inference.predictors import choose_predictor, decision_threshold
from mlplatform.model_card import card_from_tags, render_model_card
from mlplatform.store import SOURCE
from mlplatform.training import (
    assess,
    compact_by_source,
    fit_decision_model,
    leave_one_source_out,
    split_xy,
)

SEED = 42
LR = {"C": 1.0, "class_weight": None}


@pytest.fixture(scope="module")
def frames(cleveland: pd.DataFrame) -> dict[str, pd.DataFrame]:
    # Two pretend hospitals, so per-source tables and leave-one-out have something to split.
    rows = cleveland.assign(**{SOURCE: np.where(np.arange(len(cleveland)) % 3 == 0, "a", "b")})
    return {"train": rows.iloc[60:].reset_index(drop=True), "test": rows.iloc[:60]}


@pytest.fixture(scope="module")
def fitted(frames: dict[str, pd.DataFrame]):  # type: ignore[no-untyped-def]
    return fit_decision_model("logistic_regression", LR, frames["train"], SEED, 3, "max_f1")


def test_the_model_carries_its_threshold_and_labels_follow_it(fitted, frames) -> None:  # type: ignore[no-untyped-def]
    x, _ = split_xy(frames["test"])
    assert decision_threshold(fitted.pipeline) == pytest.approx(fitted.threshold)
    proba = fitted.pipeline.predict_proba(x)[:, 1]
    np.testing.assert_array_equal(fitted.pipeline.predict(x), (proba >= fitted.threshold))
    # The service's sklearn path labels from the probabilities it already has: the same labels.
    from mlplatform.inference.predictors import SklearnPredictor

    labels, served = SklearnPredictor(fitted.pipeline).predict(x.to_numpy(np.float64))
    np.testing.assert_array_equal(labels, fitted.pipeline.predict(x))
    np.testing.assert_allclose(served, proba)
    assert fitted.calibration.method in fitted.calibration.scores
    assert len(fitted.oof_proba) == len(frames["train"])


def test_assessment_gives_intervals_and_hospitals(fitted, frames) -> None:  # type: ignore[no-untyped-def]
    x, y = split_xy(frames["test"])
    labels, proba = fitted.pipeline.predict(x), fitted.pipeline.predict_proba(x)[:, 1]
    result = assess(y, labels, proba, frames["test"][SOURCE].to_numpy(), SEED)
    metrics = result.metrics()
    for name in ("f1", "roc_auc", "accuracy", "precision", "recall", "brier", "log_loss"):
        assert metrics[f"test_{name}_ci_low"] <= metrics[f"test_{name}"]
        assert metrics[f"test_{name}"] <= metrics[f"test_{name}_ci_high"]
    assert 0 <= metrics["test_ece"] <= 1
    assert [s.source for s in result.by_source] == ["a", "b", ALL]
    assert sum(s.rows for s in result.by_source[:-1]) == len(y)
    json.dumps(result.to_dict())  # logged as JSON


def test_leave_one_hospital_out_scores_each_hospital(fitted, frames) -> None:  # type: ignore[no-untyped-def]
    table = leave_one_source_out(fitted, frames["train"])
    assert [s.source for s in table] == ["a", "b", ALL]
    assert all(0 <= s.metrics["accuracy"] <= 1 for s in table)
    assert leave_one_source_out(fitted, frames["train"].drop(columns=SOURCE)) == []


def test_model_card_and_the_facts_model_shows(fitted, frames) -> None:  # type: ignore[no-untyped-def]
    x, y = split_xy(frames["test"])
    labels, proba = fitted.pipeline.predict(x), fitted.pipeline.predict_proba(x)[:, 1]
    tested = assess(y, labels, proba, frames["test"][SOURCE].to_numpy(), SEED)
    report = {
        "family": "logistic_regression", "params": LR, "threshold": fitted.threshold,
        "threshold_policy": "max_f1", "calibration": fitted.calibration.to_dict(),
        "test": tested.to_dict(), "cv_by_source": [], "leave_one_source_out": [],
    }  # fmt: skip
    data = {"dataset_version": "v-123", "deliveries": [{"source": "a", "rows": 3}]}
    card = render_model_card(report, data)
    for text in ("v-123", "a (3 rows)", "95% interval", "By hospital", "Intended use", "max_f1"):
        assert text in card
    tags = {k: str(round(v, 4)) for k, v in tested.metrics().items()}
    tags |= {"threshold": str(fitted.threshold), "calibration": "sigmoid",
             "by_source": json.dumps(compact_by_source(tested.by_source))}  # fmt: skip
    facts = card_from_tags(tags)
    assert facts["threshold"] == pytest.approx(fitted.threshold)
    assert facts["intervals"]["f1"]["low"] <= facts["intervals"]["f1"]["estimate"]
    assert [r["source"] for r in facts["by_source"]] == ["a", "b", ALL]
    assert card_from_tags({"test_f1": "0.8"}) == {}  # an old version: no card facts


def test_onnx_applies_the_models_threshold(fitted, frames) -> None:  # type: ignore[no-untyped-def]
    x, _ = split_xy(pd.concat([frames["train"], frames["test"]]))
    rows = x.astype(np.float64)
    predictor, reason = choose_predictor(fitted.pipeline, rows)
    assert predictor.backend == "onnx", reason
    labels, proba = predictor.predict(rows.to_numpy())
    np.testing.assert_array_equal(labels, fitted.pipeline.predict(rows))
    assert ((proba >= fitted.threshold) == labels.astype(bool)).all()
