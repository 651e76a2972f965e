"""Before/after figures of the model decisions (issue 10), on the shipped data, seed 42.

    uv run python benchmarks/decision_figures.py [--trials 20] [--figure reliability.png]

No services: everything runs in-process on the UCI files in SEED_DATA_DIR.

BEFORE (the former rules): the hash split; the champion is the best of an Optuna search on
Cleveland, the challenger is its configuration refit on all four hospitals; both scored on
the all-hospital test split, decided by the 0.01 F1 margin. Printed with the paired
bootstrap interval and McNemar that the margin ignores, and the champion's calibration.

AFTER (mlplatform.splitting/evaluation/calibration): the stable stratified split; the same
search on its Cleveland train split; each model calibrated as CV chooses and thresholded on
out-of-fold probabilities (max_f1), both inside the model; decided by the promotion gate.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlplatform.build import RawDelivery, build
from mlplatform.evaluation import (
    METRICS,
    GateResult,
    Predictions,
    calibration_metrics,
    expected_calibration_error,
    metric_intervals,
    metrics_by_source,
    promotion_gate,
)
from mlplatform.ingest import seed_file
from mlplatform.settings import Settings
from mlplatform.spec import SPEC
from mlplatform.splitting import TEST, hash_unit
from mlplatform.store import ROW_ID, SOURCE
from mlplatform.training import fit_decision_model, make_pipeline, search, split_xy

SEED, FRACTION, FOLDS, MARGIN = 42, 0.2, 5, 0.01
FEATURES = list(SPEC.feature_names)


def deliveries(sources: list[str]) -> list[RawDelivery]:
    settings = Settings()
    return [
        RawDelivery(s, f"landing/{s}/x", "-", seed_file(s, settings).read_bytes()) for s in sources
    ]


def margin_decision(champion: float, challenger: float) -> str:
    """The former rule, kept here only as the baseline: promote on a 0.01 F1 margin."""
    delta = challenger - champion
    return "promote" if delta > 0 and delta >= MARGIN else "keep"


def hash_split() -> dict[str, pd.DataFrame]:
    """The former ETL: v1 = Cleveland, v2 = all four hospitals, test = id hash < fraction."""
    v1 = build(deliveries(["cleveland"]), SEED, FRACTION).clean
    v2 = build(deliveries(list(SPEC.deliveries)), SEED, FRACTION).clean
    test1 = v1[ROW_ID].map(lambda i: hash_unit(SEED, i) < FRACTION)
    test2 = v2[ROW_ID].map(lambda i: hash_unit(SEED, i) < FRACTION)
    return {
        "v1_train": v1[~test1].reset_index(drop=True),
        "v1_test": v1[test1].reset_index(drop=True),
        "v2_train": v2[~test2].reset_index(drop=True),
        "test": v2[test2].reset_index(drop=True),
    }


def stratified_split() -> dict[str, pd.DataFrame]:
    """The ETL now: v1 split stratified; v2 keeps v1's assignments and stratifies the rest."""
    v1 = build(deliveries(["cleveland"]), SEED, FRACTION)
    previous = {r: name for name, df in v1.splits.items() for r in df[ROW_ID]}
    v2 = build(deliveries(list(SPEC.deliveries)), SEED, FRACTION, previous=previous)
    return {
        "v1_train": v1.splits["train"],
        "v1_test": v1.splits[TEST],
        "v2_train": v2.splits["train"],
        "test": v2.splits[TEST],
    }


@dataclass
class Pair:
    family: str
    params: dict[str, Any]
    champion: Any
    challenger: Any
    notes: dict[str, str]
    # The same configuration without calibration or threshold: isolates what they change.
    baseline: dict[str, Any] | None = None


def plain_pair(frames: dict[str, pd.DataFrame], trials: int) -> Pair:
    best = search(frames["v1_train"][[*FEATURES, SPEC.target]], trials, SEED, FOLDS)
    fit = lambda df: make_pipeline(best.family, best.params, SEED).fit(*split_xy(df))  # noqa: E731
    return Pair(best.family, best.params, fit(frames["v1_train"]), fit(frames["v2_train"]), {})


def decided_model(family: str, params: dict[str, Any], train: pd.DataFrame) -> tuple[Any, str]:
    """As training does it: calibration chosen by CV, threshold on out-of-fold probabilities."""
    model = fit_decision_model(family, params, train, SEED, FOLDS, "max_f1")
    return model.pipeline, f"{model.calibration.method}, t={model.threshold:.3f}"


def decided_pair(frames: dict[str, pd.DataFrame], trials: int) -> Pair:
    best = search(frames["v1_train"][[*FEATURES, SPEC.target]], trials, SEED, FOLDS)
    factory = lambda: make_pipeline(best.family, best.params, SEED)  # noqa: E731
    champion, c_note = decided_model(best.family, best.params, frames["v1_train"])
    challenger, d_note = decided_model(best.family, best.params, frames["v2_train"])
    notes = {"champion": c_note, "challenger": d_note}
    fit = lambda df: factory().fit(*split_xy(df))  # noqa: E731
    baseline = {"champion": fit(frames["v1_train"]), "challenger": fit(frames["v2_train"])}
    return Pair(best.family, best.params, champion, challenger, notes, baseline)


def gate(pair: Pair, test: pd.DataFrame) -> GateResult:
    x = test[FEATURES]
    return promotion_gate(
        test[SPEC.target].to_numpy(),
        Predictions.of(pair.champion, x),
        Predictions.of(pair.challenger, x),
        test[SOURCE].to_numpy(),
        seed=SEED,
    )


def calibration_row(model: Any, test: pd.DataFrame) -> dict[str, float]:
    y, proba = test[SPEC.target].to_numpy(), Predictions.of(model, test[FEATURES]).proba
    metrics = calibration_metrics(y, proba)
    metrics["ece_width"] = expected_calibration_error(y, proba, strategy="uniform")
    swiss = (test[SOURCE] == "switzerland").to_numpy()
    metrics["swiss_mean_p"] = float(proba[swiss].mean())
    return metrics


def by_source(pair: Pair, test: pd.DataFrame) -> pd.DataFrame:
    y, x = test[SPEC.target].to_numpy(), test[FEATURES]
    rows = {}
    for name, model in (("champion", pair.champion), ("challenger", pair.challenger)):
        p = Predictions.of(model, x)
        for s in metrics_by_source(y, p.labels, p.proba, test[SOURCE], ("accuracy", "f1")):
            rows[(s.source, name)] = {"rows": s.rows, **s.metrics}
    return pd.DataFrame(rows).T.unstack(1).round(3)


def report(title: str, pair: Pair, test: pd.DataFrame, result: GateResult, old: str) -> None:
    ci = result.improvement
    mc = result.mcnemar
    print(f"\n== {title}: {pair.family} {pair.params} {pair.notes or ''}")
    print(
        f"test rows {result.rows}; F1 champion {result.champion:.3f}, challenger {result.challenger:.3f}"
    )
    print(f"F1 delta {ci.estimate:+.3f}, 95% paired bootstrap [{ci.low:+.3f}, {ci.high:+.3f}]")
    print(
        f"McNemar b={mc.b} (only champion right) c={mc.c} (only challenger right) p={mc.p_value:.3f}"
    )
    print(f"today's 0.01-margin decision: {old}; gate decision: {result.decision}")
    for reason in result.reasons:
        print(f"  - {reason}")
    models = {"champion": pair.champion, "challenger": pair.challenger}
    for name, model in (pair.baseline or {}).items():
        models[f"{name} uncalibrated, t=0.5"] = model
    for name, model in models.items():
        c = calibration_row(model, test)
        f1 = METRICS["f1"].score(test[SPEC.target].to_numpy(), model.predict(test[FEATURES]))
        print(
            f"{name:32s} F1 {f1:.3f}  Brier {c['brier']:.3f}  log-loss {c['log_loss']:.3f}  ECE equal-mass "
            f"{c['ece']:.3f}  ECE equal-width {c['ece_width']:.3f}  "
            f"mean P on Switzerland {c['swiss_mean_p']:.2f}"
        )
    print(by_source(pair, test).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="Optuna trials (N_TRIALS)")
    parser.add_argument("--figure", help="write the after-models' reliability plot here (PNG)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)

    phases = {
        "BEFORE: hash split, 0.5 threshold, 0.01 margin": (hash_split, plain_pair),
        "AFTER: stable stratified split, calibrated, threshold inside": (
            stratified_split,
            decided_pair,
        ),
    }
    frames, pairs, gaps = [], [], []
    for title, (split, make_pair) in phases.items():
        frames.append(split())
        pairs.append(make_pair(frames[-1], args.trials))
        result = gate(pairs[-1], frames[-1]["test"])
        old = margin_decision(result.champion, result.challenger)
        report(title, pairs[-1], frames[-1]["test"], result, old)
        first_test = frames[-1]["v1_test"]
        p = Predictions.of(pairs[-1].champion, first_test[FEATURES])
        intervals = metric_intervals(
            first_test[SPEC.target].to_numpy(),
            p.labels,
            p.proba,
            None,
            ("f1", "roc_auc"),
            seed=SEED,
        )
        print(
            f"champion on its own Cleveland test split ({len(first_test)} rows): "
            + ", ".join(
                f"{k} {i.estimate:.3f} [{i.low:.3f}, {i.high:.3f}]" for k, i in intervals.items()
            )
        )
        target = SPEC.target
        gaps.append(abs(frames[-1]["v2_train"][target].mean() - frames[-1]["test"][target].mean()))
    print(
        f"\ntrain/test positive-rate gap, all hospitals: before {gaps[0]:.4f}, after {gaps[1]:.4f}"
    )
    before, after = pairs
    after_frames = frames[-1]
    if args.figure:
        from mlplatform.calibration import reliability_figure

        test = after_frames["test"]
        probas = {
            "before champion": Predictions.of(before.champion, test[FEATURES]).proba,
            "after champion": Predictions.of(after.champion, test[FEATURES]).proba,
            "after challenger": Predictions.of(after.challenger, test[FEATURES]).proba,
        }
        reliability_figure(test[SPEC.target].to_numpy(), probas).savefig(args.figure, dpi=100)
        print(f"reliability plot: {args.figure}")


if __name__ == "__main__":
    main()
