"""Validation of raw deliveries with pandera, built from a dataset spec.

Two levels of failure:
- the file's shape is wrong (empty, wrong column count, mostly unparseable): the whole
  delivery is rejected with `DeliveryRejected`, and nothing downstream changes;
- single rows are wrong (text in a numeric column, out-of-range value, unknown code):
  they are split off with a reason and go to the quarantine prefix.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from mlplatform.dataset import DatasetSpec
from mlplatform.spec import SPEC

REASON = "reason"


class DeliveryRejected(ValueError):
    """A delivery whose shape is wrong: it is refused whole."""


@dataclass(frozen=True)
class Validated:
    valid: pd.DataFrame  # typed (float) raw columns, missing values as NaN
    rejected: pd.DataFrame  # raw text of the failed rows plus a `reason` column


def _is_number(values: pd.Series) -> pd.Series:
    return values.isna() | pd.to_numeric(values, errors="coerce").notna()


def text_schema(spec: DatasetSpec) -> pa.DataFrameSchema:
    """The raw file as text: exact columns in order, every value a number or missing."""
    return pa.DataFrameSchema(
        {
            name: pa.Column(
                str,
                pa.Check(_is_number, error="not a number"),
                nullable=name != spec.raw_target,
            )
            for name in spec.raw_columns
        },
        strict=True,
        ordered=True,
    )


def typed_schema(spec: DatasetSpec) -> pa.DataFrameSchema:
    """Numbers: clinical ranges, whole numbers where required, allowed category codes."""
    integer = pa.Check(lambda x: x % 1 == 0, element_wise=True, error="not a whole number")
    columns: dict[str, pa.Column] = {}
    for num in spec.numeric:
        checks = [pa.Check.in_range(num.minimum, num.maximum)]
        columns[num.name] = pa.Column(float, checks + [integer] * num.integer, nullable=True)
    for cat in spec.categorical:
        columns[cat.name] = pa.Column(float, pa.Check.isin(list(cat.codes)), nullable=True)
    columns.setdefault(spec.raw_target, pa.Column(float, [pa.Check.ge(0), integer]))
    return pa.DataFrameSchema(columns, strict=True, ordered=False)


@lru_cache
def schemas(spec: DatasetSpec) -> tuple[pa.DataFrameSchema, pa.DataFrameSchema]:
    """(text schema, typed schema) of a spec, built once: pandera schemas are slow to build."""
    return text_schema(spec), typed_schema(spec)


def parse_delivery(raw: bytes, name: str, spec: DatasetSpec = SPEC) -> pd.DataFrame:
    """Parse a headerless CSV delivery as text, refusing a file of the wrong shape."""
    text = raw.decode("utf-8", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DeliveryRejected(f"delivery {name} is empty")
    expected = len(spec.raw_columns)
    widths = {len(line.split(",")) for line in lines}
    if widths != {expected}:
        found = ", ".join(str(w) for w in sorted(widths))
        raise DeliveryRejected(
            f"delivery {name} has {found} columns per row, expected {expected} "
            f"({', '.join(spec.raw_columns)})"
        )
    df = pd.read_csv(
        io.StringIO("\n".join(lines)),
        header=None,
        names=list(spec.raw_columns),
        dtype=str,
        na_values=[spec.missing_marker],
        keep_default_na=False,
        skipinitialspace=True,
    )
    return df


def _reasons(errors: SchemaErrors) -> pd.Series:
    """One text per failing row index, e.g. "chol=1200: in_range(80, 700)"."""
    cases = errors.failure_cases.dropna(subset=["index"])
    cases = cases[cases["column"].notna()]
    value = cases["failure_case"].astype(object).where(cases["failure_case"].notna(), "missing")
    text = cases["column"].astype(str) + "=" + value.astype(str) + ": " + cases["check"].astype(str)
    return text.groupby(cases["index"].astype(int)).agg(lambda parts: "; ".join(sorted(set(parts))))


def validate(raw_text: pd.DataFrame, name: str, spec: DatasetSpec = SPEC) -> Validated:
    """Split parsed rows into typed valid rows and rejected rows with their reasons."""
    text_check, typed_check = schemas(spec)
    reasons = pd.Series(dtype=str)
    try:
        text_check.validate(raw_text, lazy=True)
    except SchemaErrors as err:
        reasons = _reasons(err)
    typed = raw_text.apply(pd.to_numeric, errors="coerce").astype(float)
    for column, codes in spec.missing_codes.items():
        typed[column] = typed[column].mask(typed[column].isin(codes))
    try:
        typed_check.validate(typed, lazy=True)
    except SchemaErrors as err:
        reasons = pd.concat([reasons, _reasons(err)]).groupby(level=0).agg("; ".join)
    bad = raw_text.index.isin(reasons.index)
    if bad.mean() > spec.max_invalid_fraction:
        sample = "; ".join(reasons.head(3))
        raise DeliveryRejected(
            f"delivery {name}: {bad.sum()} of {len(bad)} rows fail validation, more than "
            f"{spec.max_invalid_fraction:.0%}; is it the right file? First reasons: {sample}"
        )
    rejected = raw_text[bad].assign(**{REASON: reasons.reindex(raw_text.index[bad]).values})
    return Validated(
        valid=typed[~bad].reset_index(drop=True), rejected=rejected.reset_index(drop=True)
    )
