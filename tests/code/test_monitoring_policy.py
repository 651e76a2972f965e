"""The degradation policy: which branch fires, and never an alarm on too little data."""

from __future__ import annotations

import pytest

from mlplatform.monitoring.policy import Decision, Thresholds, decide

T = Thresholds(min_rows=100, min_labelled=50, drift_share_threshold=0.3, f1_margin=0.1)


def test_quiet_window_is_ok() -> None:
    d = decide(500, 0.08, 200, 0.80, 0.82, T)
    assert (d.status, d.degraded, d.branches, d.drift_without_labels) == ("ok", False, [], False)


def test_drift_branch_fires_at_the_threshold_and_says_labels_were_missing() -> None:
    d = decide(500, 0.3, 10, None, 0.82, T)
    assert (d.status, d.branches, d.drift_without_labels) == ("degraded", ["drift"], True)
    assert d.figures["drift_share"] == 0.3 and d.figures["labelled_rows"] == 10
    assert any("drift share 0.30 >= 0.30" in r for r in d.reasons)


def test_performance_branch_fires_below_champion_f1_minus_margin() -> None:
    assert decide(500, 0.0, 60, 0.73, 0.84, T).branches == ["performance"]
    assert not decide(500, 0.0, 60, 0.75, 0.84, T).degraded  # 0.75 >= 0.84 - 0.1


def test_both_branches_with_labels_is_not_drift_without_labels() -> None:
    d = decide(500, 0.5, 60, 0.5, 0.84, T)
    assert d.branches == ["drift", "performance"] and not d.drift_without_labels


@pytest.mark.parametrize(
    ("rows", "labelled", "f1"),
    [(99, 0, None), (0, 0, None), (99, 49, 0.1)],
)
def test_too_little_data_is_insufficient_never_an_alarm(rows: int, labelled: int, f1) -> None:  # type: ignore[no-untyped-def]
    d = decide(rows, 1.0, labelled, f1, 0.84, T)  # even with every feature drifted, F1 0.1
    assert (d.status, d.degraded, d.branches) == ("insufficient_data", False, [])
    assert any("not judged" in r for r in d.reasons)


def test_no_champion_f1_judges_drift_only() -> None:
    d = decide(500, 0.0, 500, 0.1, None, T)
    assert d.status == "ok" and not d.figures["performance_judged"]


def test_decision_and_thresholds_round_trip() -> None:
    d = decide(500, 0.4, 10, None, 0.8, T)
    assert Decision.from_dict(d.to_dict()) == d
    assert Thresholds.from_dict(T.to_dict()) == T


def test_thresholds_from_settings_and_bad_values() -> None:
    class S:
        MONITOR_MIN_ROWS = 300
        DRIFT_SHARE_THRESHOLD = 0.5

    t = Thresholds.from_settings(S())
    assert (t.min_rows, t.drift_share_threshold) == (300, 0.5)
    assert t.min_labelled == Thresholds().min_labelled  # not set: the default
    with pytest.raises(ValueError, match="drift_share_threshold"):
        Thresholds(drift_share_threshold=0)
    with pytest.raises(ValueError, match="min_rows"):
        Thresholds(min_rows=0)


def test_importing_monitoring_stays_light() -> None:
    """DAG files and the API import these modules: Evidently, pandera and sklearn load on use."""
    import subprocess
    import sys

    code = (
        "import sys, mlplatform.monitoring.summary, mlplatform.monitoring.feedback;"
        "print(sorted(m for m in ('evidently', 'pandera', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_window_from_airflows_pendulum_time_compares_with_pandas_timestamps() -> None:
    import pandas as pd
    import pendulum

    from mlplatform.monitor import window_of
    from mlplatform.monitoring.summary import window_by_version

    start, end, window_id = window_of(pendulum.datetime(2026, 11, 29, 23, 8, 34), 1)
    log = pd.DataFrame(
        {"timestamp": pd.to_datetime(["2026-11-29T22:30:00Z", "2026-11-29T21:00:00Z"], utc=True),
         "model_version": ["7", "7"]}
    )  # fmt: skip
    assert {v: len(rows) for v, rows in window_by_version(log, start, end).items()} == {"7": 1}
    assert window_id == "2026-11-29T230834Z-1h"
