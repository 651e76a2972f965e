"""Request and response models, built from the dataset spec.

Ranges, codes and descriptions come from the spec (`mlplatform.spec.SPEC`), so the API,
the web form and the batch job validate exactly the same way. `null` means "unknown": the
pipeline imputes it, as it does in training, up to the training rule's number of unknown
features. A missing key, a wrong type, NaN/inf, an out-of-range value, an unknown code or too
many unknowns is a 422.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from mlplatform.dataset import CategoricalFeature, DatasetSpec, NumericFeature
from mlplatform.features import too_many_missing_reason
from mlplatform.monitoring.feedback import CLOCK_SKEW
from mlplatform.prediction_ids import ID_PATTERN
from mlplatform.spec import SPEC


def _example_value(feature: NumericFeature | CategoricalFeature) -> float | int:
    if isinstance(feature, CategoricalFeature):
        return next(iter(feature.codes))
    middle = (feature.minimum + feature.maximum) / 2
    return round(middle) if feature.integer else round(middle, 1)


def example_patient(spec: DatasetSpec = SPEC) -> dict[str, Any]:
    """One valid request body: mid-range values and the first code of each feature."""
    return {f.name: _example_value(f) for f in spec.features}


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


@lru_cache
def patient_model(spec: DatasetSpec = SPEC) -> type[BaseModel]:
    """One row's raw features as a request body. Every key is required; null means unknown."""

    limit = spec.max_missing_features

    def not_too_many_unknown(row: BaseModel) -> BaseModel:
        # The training rule: such rows are dropped from training, so the model cannot answer.
        # The fields are exactly the features (extra keys are refused): count in C.
        unknown = list(row.__dict__.values()).count(None)
        if unknown > limit:
            raise ValueError(
                too_many_missing_reason(unknown, spec=spec)
                + ": training drops such rows, so the model does not answer for them"
            )
        return row

    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        "Patient",
        __config__=ConfigDict(**_STRICT, json_schema_extra={"examples": [example_patient(spec)]}),
        __doc__=f"One row's {len(spec.feature_names)} raw features. Every key is required; "
        "null means unknown.",
        __validators__={
            "not_too_many_unknown": model_validator(mode="after")(not_too_many_unknown)
        },
        **{f.name: _field(f) for f in spec.features},
    )
    return model


Patient = patient_model(SPEC)


@lru_cache
def batch_request_model(max_rows: int, spec: DatasetSpec = SPEC) -> type[BaseModel]:
    """`{"rows": [...]}` with at most `max_rows` rows (MAX_BATCH_ROWS)."""
    row = patient_model(spec)
    return create_model(
        "BatchRequest",
        __config__=ConfigDict(
            **_STRICT, json_schema_extra={"examples": [{"rows": [example_patient(spec)]}]}
        ),
        rows=(
            list[row],  # type: ignore[valid-type]
            Field(min_length=1, max_length=max_rows, description=f"1 to {max_rows} rows"),
        ),
    )


class Prediction(BaseModel):
    prediction_id: str = Field(description="send it back with the observed outcome to /feedback")
    label: int = Field(description=f"1 = {SPEC.positive_label}, 0 = {SPEC.negative_label}")
    label_name: str
    probability: float = Field(description=f"probability of {SPEC.positive_label}")
    model_name: str
    model_version: str


class Outcome(BaseModel):
    """The observed outcome of one earlier prediction."""

    model_config = _STRICT
    prediction_id: str = Field(pattern=ID_PATTERN, description="as /predict returned it")
    label: Literal[0, 1] = Field(
        description=f"the observed label: 1 = {SPEC.positive_label}, 0 = {SPEC.negative_label}"
    )
    # Not strict: JSON carries a datetime as an ISO 8601 string.
    observed_at: AwareDatetime | None = Field(
        None,
        strict=False,
        description="when the outcome was observed (ISO 8601 with a time zone); default now",
    )

    @field_validator("observed_at")
    @classmethod
    def _not_in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > datetime.now(UTC) + CLOCK_SKEW:
            raise ValueError("observed_at is in the future")
        return value


@lru_cache
def feedback_batch_model(max_rows: int) -> type[BaseModel]:
    """`{"outcomes": [...]}` with at most `max_rows` outcomes (MAX_FEEDBACK_ROWS)."""
    return create_model(
        "FeedbackBatch",
        __config__=_STRICT,
        outcomes=(
            list[Outcome],
            Field(min_length=1, max_length=max_rows, description=f"1 to {max_rows} outcomes"),
        ),
    )


class FeedbackAccepted(BaseModel):
    accepted: int = Field(description="outcomes stored (the same id again counts once later)")
    received_at: datetime


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
    # The model card's facts (absent for a version registered before they were recorded).
    threshold: float | None = None
    calibration: str | None = None
    threshold_policy: str | None = None
    intervals: dict[str, dict[str, float]] | None = None  # metric -> estimate, low, high (95%)
    by_source: list[dict[str, Any]] | None = None  # per hospital on the test split


def rows_to_matrix(rows: list[BaseModel]) -> np.ndarray:
    """Validated rows as a float matrix in feature order; None becomes NaN (numpy's float
    conversion does that). A row model's fields are the spec's features, in order."""
    return np.array([list(r.__dict__.values()) for r in rows], dtype=np.float64)
