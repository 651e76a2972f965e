"""Monitoring figures on the shipped UCI data (no services; seeded, so a re-run gives the same
drift figures; only the timings move).

    uv run --frozen python benchmarks/drift_figures.py [--windows 20] [--rows 500] [--json OUT]

The reference is the Cleveland training split (seed 42, 20% test) with the out-of-fold
predictions of a logistic regression fitted on it, standing in for the champion. Every window goes through
`mlplatform.monitoring.drift.compute_drift`, the function the monitoring DAG calls.

1. False alarms of the drift branch: (a) WINDOWS windows of ROWS rows resampled from the
   Cleveland training split, the issue's definition (optimistic: the windows repeat the
   reference's own patients); (b) the held-out test split as one window (~60 patients the
   reference never saw; resampling it to ROWS rows would repeat each patient ~8 times and make
   every test see its sampling noise as drift); (c) the rate for fresh independent patients if
   the 13 tests were independent at p < 0.05: a binomial tail. Rates for several thresholds.
   Then the performance branch: live F1 on labelled windows resampled from the test split
   (its own F1 is the truth there) against the test F1 minus a margin, by window size.
2. The smallest shift detected at ROWS rows: (a) one numeric feature's mean moved by resampling
   the training split with weights exp(theta * z) (real patients, values stay on their recorded
   grid; adding k std to every value would move ca=0 or trestbps=120 off the grid and any test
   sees that), the achieved shift in std, that feature's test and the policy's alarm; (b)
   Switzerland and VA patients mixed into a Cleveland window at growing fractions.
   "Detected" means in every seed.
3. The time of one monitoring computation (drift without and with the HTML report, and the whole
   `summarise`), against scoring the same window with the model in the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binom
from sklearn.metrics import f1_score

from mlplatform.build import RawDelivery, build
from mlplatform.ingest import seed_file
from mlplatform.monitoring.drift import compute_drift, reference_frame, with_predictions
from mlplatform.monitoring.policy import Thresholds
from mlplatform.monitoring.summary import summarise
from mlplatform.settings import Settings
from mlplatform.spec import SPEC
from mlplatform.training import fit

SEED = 42
THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
TILTS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5)
FRACTIONS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
SEEDS = 5
LABELLED = (30, 50, 100, 200)
MARGINS = (0.05, 0.1, 0.15)


def load(sources: tuple[str, ...]) -> Any:
    settings = Settings()
    raw = [
        RawDelivery(s, f"landing/{s}/x", "-", seed_file(s, settings).read_bytes()) for s in sources
    ]
    return build(raw, SEED, 0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    n, defaults = args.rows, Thresholds()
    cleveland = load(("cleveland",))
    train, test = cleveland.splits["train"], cleveland.splits["test"]
    model = fit("logistic_regression", {"C": 1.0, "class_weight": None}, train, SEED)
    reference = reference_frame(model, train)
    others = load(("switzerland", "va")).clean
    numeric = list(SPEC.numeric_names)
    std = train[numeric].std()

    def drift(rows: pd.DataFrame) -> Any:
        window = with_predictions(model, rows.reset_index(drop=True))
        return compute_drift(window, reference, 1, defaults.drift_share_threshold, html=False)

    def resample(df: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
        return df.sample(size, replace=True, random_state=seed)

    figures: dict[str, Any] = {"rows": n, "reference_rows": len(reference)}
    print(f"reference: Cleveland training split, {len(reference)} rows; windows of {n} rows\n")

    # 1. False alarms
    shares = [drift(resample(train, n, SEED + i)).data.drift_share for i in range(args.windows)]
    rates = {t: sum(s >= t for s in shares) / len(shares) for t in THRESHOLDS}
    held_out = drift(test).data
    tests = len(SPEC.feature_names)
    fresh = {t: float(binom.sf(math.ceil(t * tests) - 1, tests, 0.05)) for t in THRESHOLDS}
    figures["false_alarm"] = {
        "train_windows": {"shares": shares, "rate_by_threshold": rates},
        "test_split": {"share": held_out.drift_share, "drifted": held_out.drifted_features},
        "independent_tests": fresh,
    }
    print(f"false alarms, {args.windows} windows resampled from the Cleveland training split")
    print("  drift shares: " + " ".join(f"{s:.2f}" for s in shares))
    print("  alarm rate:   " + "  ".join(f">={t}: {r:.0%}" for t, r in rates.items()))
    print(
        f"held-out test split ({len(test)} unseen patients) as one window: drift share "
        f"{held_out.drift_share:.2f} {held_out.drifted_features}"
    )
    print("independent tests at p<0.05: " + "  ".join(f">={t}: {r:.1%}" for t, r in fresh.items()))

    x_test, y_test = test[list(SPEC.feature_names)], test[SPEC.target].to_numpy()
    predicted = model.predict(x_test)
    test_f1 = f1_score(y_test, predicted)
    rng = np.random.default_rng(SEED)
    print(f"\nperformance branch: test F1 {test_f1:.3f}; live F1 on 1000 windows resampled from it")
    perf: dict[str, Any] = {"test_f1": test_f1}
    for size in LABELLED:
        f1s = []
        for _ in range(1000):
            pick = rng.integers(0, len(test), size)
            f1s.append(f1_score(y_test[pick], predicted[pick], zero_division=0))
        by_margin = {m: float(np.mean(np.array(f1s) < test_f1 - m)) for m in MARGINS}
        perf[str(size)] = by_margin
        print(
            f"  {size:>4} labelled: alarm rate "
            + "  ".join(f"margin {m}: {r:.1%}" for m, r in by_margin.items())
        )
    others_f1 = f1_score(others[SPEC.target], model.predict(others[list(SPEC.feature_names)]))
    perf["switzerland_va_f1"] = others_f1
    figures["performance"] = perf
    print(
        f"  live F1 on Switzerland+VA patients: {others_f1:.3f} (drop {test_f1 - others_f1:+.3f})"
    )

    # 2a. Tilted resampling: real patients, more of those with a high value of one feature
    print(f"\none numeric feature tilted ({SEEDS} seeds): achieved mean shift, detection")
    tilts: dict[str, list[dict[str, Any]]] = {}
    z = (train[numeric] - train[numeric].mean()) / std
    for column in numeric:
        tilts[column] = []
        for theta in TILTS:
            weights = np.exp(theta * z[column].fillna(0))
            shifts, found, alarms = [], 0, 0
            for seed in range(SEEDS):
                rows = train.sample(n, replace=True, weights=weights, random_state=1000 + seed)
                shifts.append(float((rows[column].mean() - train[column].mean()) / std[column]))
                result = drift(rows).data
                found += column in result.drifted_features
                alarms += result.drift_share >= defaults.drift_share_threshold
            step = {"theta": theta, "shift_std": statistics.mean(shifts), "found": found}
            tilts[column].append({**step, "alarms": alarms})
            print(
                f"  {column:<9} theta {theta:<4}: mean +{step['shift_std']:.2f} std, "
                f"feature drift {found}/{SEEDS}, policy alarm {alarms}/{SEEDS}"
            )
            if found == alarms == SEEDS:  # both the feature's test and the policy fire
                break

    def smallest(key: str) -> dict[str, float | None]:
        return {
            c: next((round(t["shift_std"], 2) for t in steps if t[key] == SEEDS), None)
            for c, steps in tilts.items()
        }

    figures["tilt"] = {
        "steps": tilts,
        "smallest_shift_std_feature_drift": smallest("found"),
        "smallest_shift_std_policy_alarm": smallest("alarms"),
    }
    print(f"  smallest mean shift (std) in every seed, feature drift: {smallest('found')}")
    print(f"  smallest mean shift (std) in every seed, policy alarm:  {smallest('alarms')}")

    # 2b. Switzerland + VA patients mixed into a Cleveland window
    print(f"\nSwitzerland+VA patients mixed into Cleveland windows ({SEEDS} seeds)")
    mix_rows: dict[float, dict[str, Any]] = {}
    for fraction in FRACTIONS:
        shares, predicted = [], 0
        for seed in range(SEEDS):
            shifted = round(n * fraction)
            rows = pd.concat(
                [resample(train, n - shifted, 2000 + seed), resample(others, shifted, 3000 + seed)]
            )
            result = drift(rows)
            shares.append(result.data.drift_share)
            predicted += result.prediction.drifted
        rates = {t: sum(s >= t for s in shares) / SEEDS for t in THRESHOLDS}
        mix_rows[fraction] = {"shares": shares, "rate_by_threshold": rates, "prediction": predicted}
        print(
            f"  {fraction:>4.0%}: shares "
            + " ".join(f"{s:.2f}" for s in shares)
            + f"  alarm at {defaults.drift_share_threshold}: "
            + f"{rates[defaults.drift_share_threshold]:.0%}"
            + f"  prediction drift {predicted}/{SEEDS}"
        )
    smallest_mix = {
        t: min((f for f in FRACTIONS if mix_rows[f]["rate_by_threshold"][t] == 1), default=None)
        for t in THRESHOLDS
    }
    figures["mix"] = {"by_fraction": mix_rows, "smallest_fraction_by_threshold": smallest_mix}
    print(f"  smallest fraction alarmed in every seed, by threshold: {smallest_mix}")

    # 3. Time of one monitoring computation
    window = with_predictions(model, resample(train, n, 7).reset_index(drop=True))
    end = datetime(2026, 11, 29, tzinfo=UTC)

    def timed(fn: Any) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    cases = {
        "score the window (baseline)": lambda: model.predict_proba(
            window[list(SPEC.feature_names)]
        ),
        "drift, no HTML": lambda: compute_drift(window, reference, 1, 0.3, html=False),
        "drift with HTML": lambda: compute_drift(window, reference, 1, 0.3, html=True),
        "summarise (all, with HTML)": lambda: summarise(
            window,
            reference,
            model_version="1",
            window_start=end - timedelta(hours=1),
            window_end=end,
            champion_f1=0.8,
            thresholds=defaults,
        ),
    }
    for fn in cases.values():  # warm up: imports, first-call caches
        fn()
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(5):  # interleaved, so a slow moment hits every case alike
        for name, fn in cases.items():
            runs[name].append(timed(fn))
    baseline = statistics.median(runs["score the window (baseline)"])
    print(f"\ntime of one computation on {n} rows (median of 5, interleaved)")
    timing = {}
    for name, values in runs.items():
        median = statistics.median(values)
        timing[name] = {"seconds": median, "ratio_to_baseline": median / baseline}
        print(f"  {name:<28} {median:7.3f} s  ({median / baseline:,.0f}x scoring)")
    figures["timing"] = timing
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2, default=str)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
