"""Request and response models, built from the dataset SPEC.

Ranges, codes and descriptions come from `mlplatform.dataset.SPEC`, so the API,
the web form and the batch job validate exactly the same way. `null` means
"unknown": the pipeline imputes it, as it does in training. A missing key, a
wrong type, NaN/inf, an out-of-range value or an unknown code is a 422.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, create_model

from mlplatform.dataset import SPEC
from mlplatform.heart_disease import CategoricalFeature, NumericFeature

FEATURES: tuple[str, ...] = SPEC.feature_names
LABEL_NAMES = {0: SPEC.negative_label, 1: SPEC.positive_label}
_ALL_FEATURES: list[NumericFeature | CategoricalFeature] = [*SPEC.numeric, *SPEC.categorical]
FEATURE_SPECS = {f.name: f for f in _ALL_FEATURES}


def _example_value(feature: NumericFeature | CategoricalFeature) -> float | int:
    if isinstance(feature, CategoricalFeature):
        return next(iter(feature.codes))
    middle = (feature.minimum + feature.maximum) / 2
    return round(middle) if feature.integer else round(middle, 1)


def example_patient() -> dict[str, Any]:
    """One valid request body: mid-range values and the first code of each feature."""
    return {name: _example_value(FEATURE_SPECS[name]) for name in FEATURES}


def describe(feature: NumericFeature | CategoricalFeature) -> str:
    """The validation hint shown in the OpenAPI docs and on the web form."""
    if isinstance(feature, CategoricalFeature):
        codes = ", ".join(f"{code} = {label}" for code, label in feature.codes.items())
        return f"{feature.description}. One of: {codes}. null = unknown."
    unit = f" {feature.unit}" if feature.unit else ""
    kind = "integer" if feature.integer else "number"
    return (
        f"{feature.description} ({kind}, {feature.minimum:g} to {feature.maximum:g}{unit}). "
        "null = unknown."
    )


def _field(feature: NumericFeature | CategoricalFeature) -> tuple[Any, Any]:
    if isinstance(feature, CategoricalFeature):
        kind: Any = Literal[tuple(feature.codes)]
        return kind | None, Field(description=describe(feature))
    base: Any = int if feature.integer else float
    constrained = Annotated[base, Field(ge=feature.minimum, le=feature.maximum)]
    return constrained | None, Field(description=describe(feature))


# strict: "63" is a wrong type, not 63; extra keys and NaN/inf are refused.
_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

Patient: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "Patient",
    __config__=ConfigDict(**_STRICT, json_schema_extra={"examples": [example_patient()]}),
    __doc__="One patient's 13 raw features. Every key is required; null means unknown.",
    **{name: _field(FEATURE_SPECS[name]) for name in FEATURES},
)


@lru_cache
def batch_request_model(max_rows: int) -> type[BaseModel]:
    """`{"rows": [...]}` with at most `max_rows` patients (MAX_BATCH_ROWS)."""
    return create_model(
        "BatchRequest",
        __config__=ConfigDict(
            **_STRICT, json_schema_extra={"examples": [{"rows": [example_patient()]}]}
        ),
        rows=(
            list[Patient],  # type: ignore[valid-type]
            Field(min_length=1, max_length=max_rows, description=f"1 to {max_rows} patients"),
        ),
    )


class Prediction(BaseModel):
    label: int = Field(description="1 = disease, 0 = no disease")
    label_name: str
    probability: float = Field(description="probability of disease")
    model_name: str
    model_version: str


class BatchPrediction(BaseModel):
    predictions: list[Prediction]


class ModelInfo(BaseModel):
    name: str
    version: str
    run_id: str | None
    dataset_version: str | None
    metrics: dict[str, float]
    loaded_at: datetime
    load_seconds: float
    backend: Literal["onnx", "sklearn"]
    backend_reason: str


def rows_to_matrix(rows: list[BaseModel]) -> np.ndarray:
    """Validated patients as a float matrix in FEATURES order; None becomes NaN."""
    return np.array(
        [[np.nan if (v := getattr(r, n)) is None else v for n in FEATURES] for r in rows],
        dtype=np.float64,
    )


def invalid_reasons(frame: pd.DataFrame) -> pd.Series:
    """Per row, why it is invalid ('' when valid): the Patient rules, vectorised for batch files.

    NaN is allowed (unknown, imputed); a value that is not a number is not. The checks are
    numpy masks over whole columns; text is built only for the (few) rows that fail.
    """
    n = len(frame)
    problems: list[tuple[np.ndarray, str]] = []  # (rows at fault, reason), in reporting order
    for name in FEATURES:
        if name not in frame.columns:
            problems.append((np.ones(n, dtype=bool), f"{name}: missing column"))
            continue
        raw = frame[name]
        values = _numeric(raw)
        present = ~np.isnan(values)
        problems.append((~present & raw.notna().to_numpy(), f"{name}: not a number"))
        feature = FEATURE_SPECS[name]
        if isinstance(feature, CategoricalFeature):
            codes = list(feature.codes)
            problems.append((present & ~np.isin(values, codes), f"{name}: not one of {codes}"))
            continue
        problems.append((present & np.isinf(values), f"{name}: infinite"))
        with np.errstate(invalid="ignore"):
            out = present & ((values < feature.minimum) | (values > feature.maximum))
            problems.append((out, f"{name}: outside {feature.minimum:g}..{feature.maximum:g}"))
            if feature.integer:
                problems.append((present & ~out & (values % 1 != 0), f"{name}: not an integer"))
    reasons = np.full(n, "", dtype=object)
    bad = np.logical_or.reduce([mask for mask, _ in problems]) if problems else np.zeros(n, bool)
    for row in np.flatnonzero(bad):
        reasons[row] = "; ".join(text for mask, text in problems if mask[row])
    return pd.Series(reasons, index=frame.index, dtype=object)


def _numeric(column: pd.Series) -> np.ndarray:
    """A column as float64, NaN where it is missing or not a number (cheap when numeric)."""
    if column.dtype.kind in "fiu":
        return column.to_numpy(np.float64, na_value=np.nan)
    return pd.to_numeric(column, errors="coerce").to_numpy(np.float64, na_value=np.nan)


def features_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The FEATURES columns of a (validated) frame as float64, NaN for unknown."""
    return np.column_stack([_numeric(frame[name]) for name in FEATURES])
