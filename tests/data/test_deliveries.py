"""Data tests: the real UCI files pass validation, and each kind of bad input has its
defined outcome (rejected whole, or quarantined row by row with a reason)."""

from __future__ import annotations

import pandas as pd
import pytest

from mlplatform.build import build
from mlplatform.spec import SPEC
from mlplatform.validation import REASON, DeliveryRejected, parse_delivery, validate

GOOD_ROW = "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0"


def check(text: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    result = validate(parse_delivery(text.encode(), "test"), "test")
    return result.valid, result.rejected


@pytest.mark.parametrize("source", list(SPEC.deliveries))
def test_uci_files_validate(uci: dict[str, bytes], delivery, source: str) -> None:
    valid, rejected = check(uci[source].decode())
    assert len(valid) + len(rejected) == len(uci[source].decode().splitlines())
    assert len(rejected) <= 1  # VA has one resting blood pressure of 0
    assert list(valid.columns) == list(SPEC.raw_columns)
    assert valid[SPEC.raw_target].between(0, 4).all()


def test_cleveland_is_all_valid(uci: dict[str, bytes], delivery) -> None:
    valid, rejected = check(uci["cleveland"].decode())
    assert (len(valid), len(rejected)) == (303, 0)
    assert valid[["ca", "thal"]].isna().sum().sum() == 6  # the `?` marks


def test_question_mark_and_zero_cholesterol_become_missing(uci: dict[str, bytes], delivery) -> None:
    valid, _ = check(uci["switzerland"].decode())
    assert valid["chol"].isna().all()  # Switzerland records a missing cholesterol as 0


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file_is_rejected(text: str) -> None:
    with pytest.raises(DeliveryRejected, match="empty"):
        parse_delivery(text.encode(), "test")


def test_wrong_column_count_is_rejected() -> None:
    with pytest.raises(DeliveryRejected, match="13 columns per row, expected 14"):
        parse_delivery((GOOD_ROW.rsplit(",", 1)[0] + "\n").encode(), "test")
    with pytest.raises(DeliveryRejected, match="14, 15 columns"):
        parse_delivery(f"{GOOD_ROW}\n{GOOD_ROW},1\n".encode(), "test")


def test_string_in_numeric_column_quarantines_the_row() -> None:
    valid, rejected = check(f"{GOOD_ROW}\n{GOOD_ROW}\n" + GOOD_ROW.replace("63.0", "sixty", 1))
    assert len(valid) == 2
    assert rejected[REASON].tolist() == ["age=sixty: not a number"]
    assert rejected.loc[0, "age"] == "sixty"  # quarantine keeps what was delivered


def test_mostly_unparseable_file_is_rejected_whole() -> None:
    header = ",".join(SPEC.raw_columns)  # e.g. a CSV with a header and one row
    with pytest.raises(DeliveryRejected, match="fail validation"):
        check(f"{header}\n{header}\n{GOOD_ROW}")


@pytest.mark.parametrize(
    ("column", "value", "check_name"),
    [
        ("chol", "1200", "in_range"),
        ("age", "7", "in_range"),
        ("thal", "5", "isin"),
        ("ca", "1.5", "whole"),
    ],
)
def test_out_of_range_or_unknown_code_quarantines_the_row(
    column: str, value: str, check_name: str
) -> None:
    values = GOOD_ROW.split(",")
    values[SPEC.raw_columns.index(column)] = value
    valid, rejected = check(f"{GOOD_ROW}\n{GOOD_ROW}\n" + ",".join(values))
    assert len(valid) == 2 and len(rejected) == 1
    assert (
        rejected.loc[0, REASON].startswith(f"{column}=") and check_name in rejected.loc[0, REASON]
    )


def test_missing_target_quarantines_the_row() -> None:
    _, rejected = check(f"{GOOD_ROW}\n{GOOD_ROW}\n" + GOOD_ROW.rsplit(",", 1)[0] + ",?")
    assert rejected.loc[0, REASON].startswith("num=")


def test_duplicate_delivery_gives_the_same_dataset_version(uci: dict[str, bytes], delivery) -> None:
    once = build([delivery("cleveland", uci["cleveland"])], 42, 0.2)
    twice = build(
        [delivery("cleveland", uci["cleveland"]), delivery("cleveland_again", uci["cleveland"])],
        42,
        0.2,
    )
    assert twice.version == once.version
    assert twice.counts["rows_duplicate"] == 303
    assert len(twice.clean) == 303


def test_bad_rows_land_in_quarantine_with_their_reason(uci: dict[str, bytes], delivery) -> None:
    built = build([delivery("va", uci["va"])], 42, 0.2)
    reasons = built.quarantine[REASON]
    assert reasons.str.contains("trestbps=0.0").sum() == 1
    assert reasons.str.contains("features missing").sum() == built.counts["rows_too_sparse"] > 0
    assert (
        built.counts["rows_clean"]
        + built.counts["rows_quarantined"]
        + built.counts["rows_duplicate"]
        == built.counts["rows_delivered"]
    )
