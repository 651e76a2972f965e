"""Calibration metrics, threshold choice and the threshold carried inside the model
(mlplatform.calibration), on the shipped Cleveland file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlplatform.calibration import (
    CALIBRATION_METHODS,
    CalibrationChoice,
    choose_calibration,
    choose_threshold,
    decision_pipeline,
    reliability_figure,
    threshold_of,
)
from mlplatform.evaluation import calibration_metrics, expected_calibration_error
from mlplatform.registry import SKOPS_TRUSTED_TYPES
from mlplatform.synthetic import synthetic_features
from mlplatform.training import make_pipeline, split_xy

SEED = 42
SVM = {"C": 1.0, "gamma": 0.05}
TRUSTED = SKOPS_TRUSTED_TYPES


@pytest.fixture(scope="module")
def rows(cleveland: pd.DataFrame) -> pd.DataFrame:
    """Real rows plus 500 synthetic ones spread over the whole valid range, some with gaps."""
    x, _ = split_xy(cleveland)
    return pd.concat([x, synthetic_features(500, seed=3, missing_rate=0.05)], ignore_index=True)


def test_ece_by_hand() -> None:
    y = np.array([0, 0, 1, 1, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    # Equal mass, 2 bins: {0.1..0.4} observed 0.5 vs mean 0.25; {0.6..0.9} 0.75 vs 0.75.
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.5 * 0.25)
    # Equal width, 2 bins on [0, 1]: the same rows fall in the same halves here.
    assert expected_calibration_error(y, p, n_bins=2, strategy="uniform") == pytest.approx(0.125)
    rng = np.random.default_rng(0)
    p = rng.random(20_000)
    calibrated = (rng.random(20_000) < p).astype(int)
    assert expected_calibration_error(calibrated, p) < 0.02
    assert expected_calibration_error(calibrated, np.clip(p + 0.2, 0, 1)) > 0.15
    metrics = calibration_metrics(calibrated, p)
    assert set(metrics) == {"brier", "log_loss", "ece"} and metrics["brier"] < 0.2


def test_threshold_policies() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    proba = np.clip(0.35 * y + rng.random(400) * 0.65, 0, 1)
    best = choose_threshold(y, proba, "max_f1")
    f1 = lambda t: 2 * ((proba >= t) & (y == 1)).sum() / ((proba >= t).sum() + y.sum())  # noqa: E731
    assert f1(best) == pytest.approx(max(f1(t) for t in np.unique(proba)))
    strict = choose_threshold(y, proba, "min_recall:0.85")
    recall = lambda t: ((proba >= t) & (y == 1)).sum() / y.sum()  # noqa: E731
    assert recall(strict) >= 0.85
    assert recall(np.nextafter(strict, 1.0)) < 0.85  # the highest such threshold
    for bad in ("max_f2", "min_recall", "min_recall:0", "min_recall:abc", "max_f1:0.5"):
        with pytest.raises(ValueError, match="threshold policy"):
            choose_threshold(y, proba, bad)


def test_svm_labels_follow_its_probability_inside_the_model(
    cleveland: pd.DataFrame, rows: pd.DataFrame
) -> None:
    x, y = split_xy(cleveland)
    plain = make_pipeline("svm", SVM, SEED).fit(x, y)
    p = plain.predict_proba(rows)[:, 1]
    # The bug this fixes: SVC's predict follows its decision function, not Platt's proba.
    assert (plain.predict(rows) != (p >= 0.5)).any()
    for threshold in (0.5, 0.3):
        model = decision_pipeline(make_pipeline("svm", SVM, SEED), threshold=threshold).fit(x, y)
        proba = model.predict_proba(rows)[:, 1]
        np.testing.assert_array_equal(model.predict(rows), (proba >= threshold).astype(int))
        # The serving path: preprocessing, then the final step on its own.
        final = model[-1].predict(model[:-1].transform(rows))
        np.testing.assert_array_equal(final, model.predict(rows))
        assert threshold_of(model) == threshold
    assert threshold_of(plain) == 0.5


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibrated_thresholded_model_round_trips_through_skops(
    method: str, cleveland: pd.DataFrame, rows: pd.DataFrame
) -> None:
    import skops.io

    x, y = split_xy(cleveland)
    model = decision_pipeline(make_pipeline("svm", SVM, SEED), method, 0.4, 3).fit(x, y)
    blob = skops.io.dumps(model)
    untrusted = set(skops.io.get_untrusted_types(data=blob))
    assert untrusted <= set(TRUSTED), f"add to the trusted types: {untrusted - set(TRUSTED)}"
    if method == "sigmoid":  # the calibration types are needed, not decoration
        assert "sklearn.calibration._SigmoidCalibration" in untrusted
    loaded = skops.io.loads(blob, trusted=sorted(untrusted))
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))
    np.testing.assert_array_equal(loaded.predict_proba(rows), model.predict_proba(rows))


def test_mlflow_pyfunc_gives_the_same_labels(
    cleveland: pd.DataFrame, rows: pd.DataFrame, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """MLflow's own pyfunc load (as /predict's champion URI would) keeps the threshold."""
    import mlflow.pyfunc
    import mlflow.sklearn

    x, y = split_xy(cleveland)
    model = decision_pipeline(make_pipeline("svm", SVM, SEED), "sigmoid", 0.35, 3)
    model.fit(x, y)
    mlflow.sklearn.save_model(
        model, tmp_path / "m", serialization_format="skops", skops_trusted_types=TRUSTED
    )
    labels = np.asarray(mlflow.pyfunc.load_model(str(tmp_path / "m")).predict(rows))
    np.testing.assert_array_equal(labels, (model.predict_proba(rows)[:, 1] >= 0.35).astype(int))


def test_calibration_is_chosen_by_out_of_fold_scores(cleveland: pd.DataFrame) -> None:
    x, y = split_xy(cleveland)
    factory = lambda: make_pipeline("random_forest", {"n_estimators": 50, "max_depth": 4}, SEED)  # noqa: E731
    choice, oof = choose_calibration(factory, x, y, SEED, folds=3)
    assert set(choice.scores) == set(CALIBRATION_METHODS)
    assert choice.method == min(choice.scores, key=lambda m: choice.scores[m]["brier"])
    assert oof.shape == (len(y),) and np.all((oof >= 0) & (oof <= 1))
    assert calibration_metrics(y, oof)["brier"] == pytest.approx(
        choice.scores[choice.method]["brier"]
    )
    assert CalibrationChoice.from_dict(choice.to_dict()) == choice
    again, _ = choose_calibration(factory, x, y, SEED, folds=3)
    assert again == choice
    threshold = choose_threshold(y, oof, "min_recall:0.9")
    assert ((oof >= threshold) & (y == 1)).sum() / y.sum() >= 0.9


def test_reliability_figure_draws_each_model(cleveland: pd.DataFrame) -> None:
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    y = cleveland["target"].to_numpy()
    fig = reliability_figure(y, {"a": rng.random(len(y)), "b": np.full(len(y), y.mean())})
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert any(label.startswith("a (ECE") for label in labels)
    assert any(label.startswith("b (ECE") for label in labels)
    plt.close(fig)
