"""The promotion gate and the bootstrap (mlplatform.evaluation) on synthetic data with a
known truth: no model is trained here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlplatform.evaluation import (
    KEEP,
    METRICS,
    PROMOTE,
    GateResult,
    Predictions,
    SourceMetrics,
    mcnemar,
    metric_intervals,
    metrics_by_source,
    promotion_gate,
    resample_counts,
)

BETTER_TRIALS, EQUAL_TRIALS = 40, 200


def synthetic(
    seed: int, n: int = 300, champion: float = 0.7, challenger: float = 0.7, sources: int = 3
) -> tuple[np.ndarray, Predictions, Predictions, np.ndarray]:
    """Labels and two models whose scores separate the classes with a known strength."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)

    def model(strength: float) -> Predictions:
        proba = 1 / (1 + np.exp(-((2 * y - 1) * strength + rng.normal(0, 1, n))))
        return Predictions((proba >= 0.5).astype(int), proba)

    return y, model(champion), model(challenger), rng.integers(0, sources, n).astype(str)


def test_fast_metrics_equal_sklearn_with_sample_weights() -> None:
    y, model, _, sources = synthetic(0)
    proba = np.round(model.proba, 2)  # ties, to check how ROC AUC counts them
    counts = resample_counts(sources, len(y), 30, seed=1)
    for metric in METRICS.values():
        values = model.labels if metric.kind == "labels" else proba
        slow = [metric.fn(y, values, sample_weight=w) for w in counts]
        np.testing.assert_allclose(metric.batch(counts, y, values), slow, atol=1e-12)


def test_resamples_keep_each_source_size() -> None:
    sources = np.array(["a"] * 10 + ["b"] * 30 + ["c"] * 5)
    counts = resample_counts(sources, len(sources), 200, seed=3)
    for name, size in (("a", 10), ("b", 30), ("c", 5)):
        assert np.all(counts[:, sources == name].sum(axis=1) == size)
    assert np.array_equal(counts, resample_counts(sources, len(sources), 200, seed=3))


def test_interval_covers_the_truth_and_narrows_with_more_rows() -> None:
    y, model, _, sources = synthetic(5, n=2000)
    wide = metric_intervals(y[:200], model.labels[:200], model.proba[:200], sources[:200])
    narrow = metric_intervals(y, model.labels, model.proba, sources)
    for name in ("f1", "roc_auc", "brier"):
        assert wide[name].low <= narrow[name].estimate <= wide[name].high
        assert narrow[name].high - narrow[name].low < wide[name].high - wide[name].low
        assert narrow[name].low <= narrow[name].estimate <= narrow[name].high


def test_mcnemar_exact_p_values() -> None:
    y = np.ones(20, int)
    same = mcnemar(
        y, np.r_[np.zeros(6), np.ones(6), np.ones(8)], np.r_[np.ones(6), np.zeros(6), np.ones(8)]
    )
    assert (same.b, same.c, same.p_value) == (6, 6, 1.0)
    one_sided = mcnemar(y, np.r_[np.zeros(10), np.ones(10)], np.ones(20))
    assert (one_sided.b, one_sided.c) == (0, 10)
    assert one_sided.p_value == pytest.approx(2 * 0.5**10)


@pytest.mark.parametrize("metric", ["f1", "brier"])
def test_gate_promotes_a_better_model_and_keeps_an_equal_one(metric: str) -> None:
    """Known truth, seeded trials: the decision must be right in at least 95% of them.
    An equal challenger passes the 95% interval by chance in ~2.5% of trials (measured:
    2.6% of 1,600 for brier), so EQUAL_TRIALS is large enough that 95% is a safe floor."""
    better = sum(
        promotion_gate(*synthetic(seed, challenger=1.6), metric=metric, seed=seed).promote
        for seed in range(BETTER_TRIALS)
    )
    equal = sum(
        not promotion_gate(*synthetic(seed), metric=metric, seed=seed).promote
        for seed in range(EQUAL_TRIALS)
    )
    assert better >= 0.95 * BETTER_TRIALS, f"promoted the better model {better}/{BETTER_TRIALS}"
    assert equal >= 0.95 * EQUAL_TRIALS, f"kept the equal model {equal}/{EQUAL_TRIALS}"


def test_a_source_that_gets_worse_vetoes_the_promotion() -> None:
    y, champion, challenger, sources = synthetic(11, n=600, challenger=1.6)
    hurt = sources == "0"
    broken = challenger.labels.copy()
    broken[hurt] = 1 - y[hurt]  # wrong on every row of source 0
    result = promotion_gate(y, champion, Predictions(broken, challenger.proba), sources)
    vetoes = [s.source for s in result.sources if s.vetoes]
    assert result.decision == KEEP and vetoes == ["0"]
    assert any("source 0" in reason for reason in result.reasons)
    # The same damage on a source below min_source_rows is reported, but does not veto.
    small = promotion_gate(
        y, champion, Predictions(broken, challenger.proba), sources, min_source_rows=10_000
    )
    assert not any(s.checked for s in small.sources)


def test_gate_result_travels_as_json() -> None:
    y, champion, challenger, sources = synthetic(2, challenger=1.6)
    sources[:5] = "tiny"
    y[sources == "tiny"] = 1  # one class: ROC AUC undefined there (null in JSON)
    result = promotion_gate(y, champion, challenger, sources, "roc_auc", n_resamples=500)
    assert result.decision == PROMOTE
    text = json.dumps(result.to_dict(), allow_nan=False)
    back = GateResult.from_dict(json.loads(text))
    assert back.to_dict() == result.to_dict()
    assert "lies above 0" in back.rule and back.mcnemar == result.mcnemar


def test_metrics_by_source_match_sklearn_on_each_subset() -> None:
    from sklearn.metrics import f1_score, roc_auc_score

    y, model, _, sources = synthetic(4)
    y[sources == "2"] = 1  # a source with one class (Switzerland): ROC AUC is undefined
    table = {s.source: s for s in metrics_by_source(y, model.labels, model.proba, sources)}
    assert list(table) == ["0", "1", "2", "all"] and table["all"].rows == len(y)
    for name in ("0", "1"):
        mask = sources == name
        assert table[name].rows == mask.sum() and table[name].positives == y[mask].sum()
        assert table[name].metrics["f1"] == pytest.approx(f1_score(y[mask], model.labels[mask]))
        assert table[name].metrics["roc_auc"] == pytest.approx(
            roc_auc_score(y[mask], model.proba[mask])
        )
        assert table[name].mean_proba == pytest.approx(model.proba[mask].mean())
    assert np.isnan(table["2"].metrics["roc_auc"])
    as_json = json.loads(json.dumps(table["2"].to_dict(), allow_nan=False))
    assert as_json["metrics"]["roc_auc"] is None
    assert SourceMetrics.from_dict(as_json).to_dict() == table["2"].to_dict()
