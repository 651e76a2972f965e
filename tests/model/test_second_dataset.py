"""A second, tiny dataset spec goes through validation, the dataset build, training and the API
schema without any change to code outside the spec: the platform is generic over its data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mlplatform.build import RawDelivery, build
from mlplatform.dataset import CategoricalFeature, DatasetSpec, NumericFeature, Param
from mlplatform.inference.contract import invalid_reasons
from mlplatform.serving.schemas import batch_request_model, example_patient, patient_model
from mlplatform.training import evaluate, fit, search

TINY = DatasetSpec(
    name="tiny_sensors",
    display_name="Sensor fault",
    raw_columns=("temperature", "vibration", "line", "fault"),
    numeric=(
        NumericFeature("temperature", "Temperature", 0, 120, "°C"),
        NumericFeature("vibration", "Vibration", 0, 10, "mm/s"),
    ),
    categorical=(CategoricalFeature("line", "Production line", {1: "north", 2: "south"}),),
    raw_target="fault",
    target="target",
    positive_label="fault",
    negative_label="ok",
    missing_marker="NA",
    max_missing_features=1,
    report_metrics=("f1", "roc_auc"),
    search_space={"logistic_regression": {"C": Param("float", 0.1, 10.0, log=True)}},
)


def delivery(n: int = 300, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    temperature = rng.uniform(20, 110, n).round(1)
    vibration = rng.uniform(0, 9, n).round(2)
    line = rng.choice([1, 2], n)
    fault = ((temperature / 30 + vibration / 3 + rng.normal(0, 0.5, n)) > 4).astype(int)
    rows = [
        f"{t},{v},{c},{f}" for t, v, c, f in zip(temperature, vibration, line, fault, strict=True)
    ]
    rows += ["NA,NA,1,0", "500,1,1,0", "hot,1,2,1"]  # too sparse, out of range, not a number
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture(scope="module")
def built():  # type: ignore[no-untyped-def]
    return build([RawDelivery("plant", "landing/plant/a.csv", "-", delivery())], 1, 0.25, TINY)


def test_validation_and_build_follow_the_spec(built) -> None:  # type: ignore[no-untyped-def]
    assert built.counts["rows_delivered"] == 303
    assert built.counts["rows_invalid"] == 2 and built.counts["rows_too_sparse"] == 1
    assert set(built.splits["train"].columns) == {"row_id", "source", "temperature", "vibration",
                                                   "line", "target"}  # fmt: skip
    assert built.counts["rows_train"] + built.counts["rows_test"] == 300


def test_training_learns_the_second_dataset(built) -> None:  # type: ignore[no-untyped-def]
    best = search(built.splits["train"], 3, 0, 3, spec=TINY)
    assert best.family == "logistic_regression"
    model = fit(best.family, best.params, built.splits["train"], 0, TINY)
    assert evaluate(model, built.splits["test"], TINY)["test_roc_auc"] > 0.85


def test_the_api_schema_and_batch_rules_come_from_the_spec() -> None:
    row = patient_model(TINY)
    assert set(row.model_fields) == {"temperature", "vibration", "line"}
    assert row(**example_patient(TINY)).line == 1  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="line"):
        row(temperature=50.0, vibration=1.0, line=3)
    with pytest.raises(ValidationError, match="2 of 3 features missing \\(more than 1\\)"):
        row(temperature=None, vibration=None, line=1)
    batch = batch_request_model(2, TINY)
    with pytest.raises(ValidationError, match="at most 2"):
        batch(rows=[example_patient(TINY)] * 3)
    frame = pd.DataFrame({"temperature": [50.0, 500.0], "vibration": [1.0, 1.0], "line": [2, 2]})
    assert list(invalid_reasons(frame, TINY)) == ["", "temperature: outside 0..120"]
