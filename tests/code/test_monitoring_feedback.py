"""Feedback: outcome validation, the idempotent merge, bulk files, the join, the delivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from mlplatform.monitoring.feedback import (
    OBSERVED,
    PREDICTION_ID,
    REVISIONS,
    FeedbackFileRejected,
    InvalidFeedback,
    Outcome,
    check_batch,
    feedback_delivery,
    join_outcomes,
    merge_outcomes,
    outcomes_frame,
    parse_feedback_csv,
    parse_outcome,
    unknown_ids,
)
from mlplatform.monitoring.performance import live_performance
from mlplatform.prediction_ids import new_ids
from mlplatform.spec import SPEC
from mlplatform.validation import parse_delivery, validate

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
A, B, C = new_ids(3, b"test")
PATIENT = "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0"


def at(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


def test_a_valid_outcome_parses_and_round_trips() -> None:
    o = parse_outcome({"prediction_id": A, "label": 1, "observed_at": "2026-11-28T10:00:00"}, NOW)
    assert o == Outcome(A, 1, datetime(2026, 11, 28, 10, tzinfo=UTC))  # no zone: UTC
    assert Outcome.from_dict(o.to_dict()) == o
    assert parse_outcome({"prediction_id": A, "label": 0}).observed_at is None


@pytest.mark.parametrize(
    ("record", "field", "text"),
    [
        ({"label": 1}, "prediction_id", "missing"),
        ({"prediction_id": "42", "label": 1}, "prediction_id", "not a prediction id"),
        ({"prediction_id": A.upper(), "label": 1}, "prediction_id", "not a prediction id"),
        ({"prediction_id": A}, "label", "missing"),
        ({"prediction_id": A, "label": 2}, "label", "expected one of 0, 1"),
        ({"prediction_id": A, "label": True}, "label", "not a label"),
        ({"prediction_id": A, "label": "yes"}, "label", "not a label"),
        ({"prediction_id": A, "label": 1, "observed_at": "yesterday"}, "observed_at", "ISO 8601"),
        (
            {"prediction_id": A, "label": 1, "observed_at": at(1).isoformat()},
            "observed_at",
            "future",
        ),
    ],
)
def test_bad_outcomes_name_the_field(record, field: str, text: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidFeedback, match=text) as err:
        parse_outcome(record, NOW)
    assert err.value.field == field


def test_batch_limits_and_unknown_ids() -> None:
    check_batch(3, 3)
    with pytest.raises(InvalidFeedback, match="4 outcomes, more than the limit of 3"):
        check_batch(4, 3)
    with pytest.raises(InvalidFeedback, match="no outcomes"):
        check_batch(0, 3)
    assert unknown_ids([A, B, C], [B]) == sorted([A, C])


def test_the_same_outcome_twice_is_one_outcome() -> None:
    batch = outcomes_frame([Outcome(A, 1), Outcome(B, 0), Outcome(A, 1)], at(-2))
    first = merge_outcomes(None, batch)
    assert (first.added, first.unchanged, len(first.outcomes)) == (2, 1, 2)
    again = merge_outcomes(first.outcomes, outcomes_frame([Outcome(A, 1), Outcome(B, 0)], at(-1)))
    assert (again.added, again.unchanged, again.changed) == (0, 2, 0)
    pd.testing.assert_frame_equal(again.outcomes, first.outcomes)  # stored table untouched


def test_a_changed_label_observed_later_wins_and_is_counted() -> None:
    stored = merge_outcomes(None, outcomes_frame([Outcome(A, 1, at(-5))], at(-4))).outcomes
    later = merge_outcomes(stored, outcomes_frame([Outcome(A, 0, at(-3))], at(-1)))
    assert (later.changed, later.superseded) == (1, 0)
    row = later.outcomes.set_index(PREDICTION_ID).loc[A]
    assert (row[OBSERVED], row[REVISIONS]) == (0, 1)
    older = merge_outcomes(later.outcomes, outcomes_frame([Outcome(A, 1, at(-9))], at(0)))
    assert (older.changed, older.superseded) == (0, 1)
    assert older.outcomes.set_index(PREDICTION_ID).loc[A, OBSERVED] == 0
    # Without observed_at, an outcome counts as observed when received: a later correction wins.
    fixed = merge_outcomes(older.outcomes, outcomes_frame([Outcome(A, 1)], at(0)))
    assert fixed.changed == 1 and fixed.outcomes.loc[0, REVISIONS] == 2


def test_outcomes_file_splits_valid_and_rejected_rows_with_reasons() -> None:
    text = (
        "prediction_id,label,observed_at\n"
        f"{A},1,2026-11-28T10:00:00Z\n"
        f"{B},0,\n"
        "not-an-id,1,\n"
        f"{C},7,\n"
        f"{C},1,tomorrow\n"
    )
    parsed = parse_feedback_csv(text.encode(), "f.csv", NOW)
    assert parsed.format == "outcomes" and parsed.rows is None
    assert parsed.outcomes == [Outcome(A, 1, datetime(2026, 11, 28, 10, tzinfo=UTC)), Outcome(B, 0)]
    stored = merge_outcomes(None, outcomes_frame(parsed.outcomes, NOW)).outcomes
    assert stored[OBSERVED].tolist() == [1, 0]
    assert parsed.rejected["line"].tolist() == [4, 5, 6]
    assert "prediction_id" in parsed.rejected["reason"][0]
    assert "label: '7'" in parsed.rejected["reason"][1]
    assert "observed_at: 'tomorrow'" in parsed.rejected["reason"][2]


def test_full_rows_file_is_validated_like_a_delivery() -> None:
    header = ",".join([*SPEC.feature_names, "label"])
    bad_chol = PATIENT.replace("233.0", "1200.0")
    text = f"{header}\n{PATIENT},1\n{PATIENT.replace('6.0', '?')},0\n{bad_chol},1\n{PATIENT},3\n"
    parsed = parse_feedback_csv(text.encode(), "rows.csv", NOW)
    assert parsed.format == "rows" and parsed.rows is not None
    assert parsed.rows.index.tolist() == [2, 3] and parsed.rows[OBSERVED].tolist() == [1, 0]
    assert parsed.rows["thal"].isna().tolist() == [False, True]
    assert parsed.outcomes == []  # no prediction ids: for retraining only
    reasons = dict(zip(parsed.rejected["line"], parsed.rejected["reason"], strict=True))
    assert "chol=1200.0" in reasons[4] and "label" in reasons[5]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "not a CSV with a header"),
        ("prediction_id,label\n", "no rows"),
        ("id,outcome\nx,1\n", "header id,outcome is neither"),
        ("prediction_id,label,comment\nx,1,hi\n", "is neither"),
    ],
)
def test_wrong_files_are_refused_whole(text: str, match: str) -> None:
    with pytest.raises(FeedbackFileRejected, match=match):
        parse_feedback_csv(text.encode(), "x.csv", NOW)


def predictions_log() -> pd.DataFrame:
    rows = [dict(zip(SPEC.feature_names, map(float, PATIENT.split(",")), strict=True))] * 3
    return pd.DataFrame(rows).assign(
        prediction_id=[A, B, C], label=[1, 0, 1], probability=[0.9, 0.2, 0.6]
    )


def test_join_gives_each_prediction_its_outcome() -> None:
    stored = merge_outcomes(None, outcomes_frame([Outcome(A, 1), Outcome(C, 0)], NOW)).outcomes
    joined = join_outcomes(predictions_log(), stored)
    assert joined[OBSERVED].tolist() == [1, pd.NA, 0]
    perf = live_performance(joined, min_labelled=2)
    assert (perf.labelled_rows, perf.accuracy, perf.recall) == (2, 0.5, 1.0)
    assert perf.brier == round(((0.9 - 1) ** 2 + (0.6 - 0) ** 2) / 2, 4)
    assert live_performance(joined, min_labelled=3).status == "insufficient_data"
    old_log = predictions_log().drop(columns=PREDICTION_ID)  # logged before ids existed
    assert join_outcomes(old_log, stored)[OBSERVED].isna().all()


def test_labelled_rows_become_a_delivery_that_passes_validation() -> None:
    stored = merge_outcomes(None, outcomes_frame([Outcome(A, 1), Outcome(C, 0)], NOW)).outcomes
    joined = join_outcomes(predictions_log().assign(ca=[0.0, None, None]), stored)
    data = feedback_delivery(joined)
    lines = data.decode().splitlines()
    assert len(lines) == 2 and lines[1].split(",")[SPEC.raw_columns.index("ca")] == "?"
    result = validate(parse_delivery(data, "feedback"), "feedback")
    assert len(result.valid) == 2 and result.rejected.empty
    assert result.valid[SPEC.raw_target].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="no labelled rows"):
        feedback_delivery(join_outcomes(predictions_log(), None))


def test_full_rows_with_ids_give_outcomes_and_a_delivery() -> None:
    header = ",".join(["prediction_id", *SPEC.feature_names, "label"])
    text = f"{header}\n{A},{PATIENT},1\n,{PATIENT.replace('145.0', '')},0\n"
    parsed = parse_feedback_csv(text.encode(), "rows.csv", NOW)
    assert parsed.outcomes == [Outcome(A, 1)] and parsed.rejected.empty
    assert parsed.rows is not None
    result = validate(parse_delivery(feedback_delivery(parsed.rows), "fb"), "fb")
    assert len(result.valid) == 2 and result.valid["trestbps"].isna().tolist() == [False, True]


@pytest.mark.parametrize("observed", [0, 1])
def test_live_performance_of_a_single_class_window(observed: int) -> None:
    joined = predictions_log().assign(**{OBSERVED: pd.array([observed] * 3, dtype="Int64")})
    perf = live_performance(joined, min_labelled=3)
    assert perf.status == "ok" and perf.accuracy == round([1, 0, 1].count(observed) / 3, 4)
    assert perf.recall == (round(2 / 3, 4) if observed else 0.0)  # no positives: 0, no crash
