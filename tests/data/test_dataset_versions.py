"""Data tests of the cleaning and split rules: versions, stable and stratified splits."""

from __future__ import annotations

import pandas as pd

from mlplatform.build import build
from mlplatform.spec import SPEC
from mlplatform.store import ROW_ID, SOURCE


def test_same_input_same_version(uci: dict[str, bytes], delivery) -> None:
    first = build([delivery("cleveland", uci["cleveland"])], 42, 0.2)
    again = build([delivery("cleveland", uci["cleveland"])], 42, 0.2)
    assert first.version == again.version
    assert build([delivery("cleveland", uci["cleveland"])], 7, 0.2).version != first.version


def test_target_is_binary_and_clean_rows_are_not_too_sparse(
    uci: dict[str, bytes], delivery
) -> None:
    built = build([delivery(s, uci[s]) for s in SPEC.deliveries], 42, 0.2)
    assert set(built.clean[SPEC.target].unique()) == {0, 1}
    missing = built.clean[list(SPEC.feature_names)].isna().sum(axis=1)
    assert missing.max() <= SPEC.max_missing_features
    assert built.clean[ROW_ID].is_unique


def test_a_row_keeps_its_split_when_new_data_arrives(uci: dict[str, bytes], delivery) -> None:
    before = build([delivery("cleveland", uci["cleveland"])], 42, 0.2)
    previous = {r: name for name, df in before.splits.items() for r in df[ROW_ID]}
    after = build([delivery(s, uci[s]) for s in SPEC.deliveries], 42, 0.2, previous=previous)
    assert after.version != before.version
    for name in ("train", "test"):
        old_ids = set(before.splits[name][ROW_ID])
        assert old_ids <= set(after.splits[name][ROW_ID]), f"rows left the {name} split"
    # A re-run on its own published version changes nothing (the ETL is idempotent).
    own = {r: name for name, df in after.splits.items() for r in df[ROW_ID]}
    again = build([delivery(s, uci[s]) for s in SPEC.deliveries], 42, 0.2, previous=own)
    assert again.version == after.version


def test_split_is_stratified_by_class_and_source(uci: dict[str, bytes], delivery) -> None:
    built = build([delivery(s, uci[s]) for s in SPEC.deliveries], 42, 0.2)
    rows = pd.concat([df.assign(split=name) for name, df in built.splits.items()])
    for (_, _), group in rows.groupby([SPEC.target, SOURCE]):
        assert abs((group["split"] == "test").sum() - 0.2 * len(group)) <= 1


def test_split_is_stratified_and_sized(uci: dict[str, bytes], delivery) -> None:
    built = build([delivery(s, uci[s]) for s in SPEC.deliveries], 42, 0.2)
    train, test = built.splits["train"], built.splits["test"]
    assert 0.15 < len(test) / len(built.clean) < 0.25
    assert abs(train[SPEC.target].mean() - test[SPEC.target].mean()) < 0.06
