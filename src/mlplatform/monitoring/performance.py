"""Live performance of a model version from the predictions that got an observed outcome."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import pandas as pd

from mlplatform.monitoring.drift import LABEL, PROBABILITY
from mlplatform.monitoring.policy import INSUFFICIENT_DATA, OK, Status

OBSERVED = "observed_label"  # the outcome joined to a prediction; missing when none came back


@dataclass(frozen=True)
class LivePerformance:
    """Metrics over `labelled_rows` joined outcomes; every metric is None below `min_labelled`."""

    status: Status
    labelled_rows: int
    min_labelled: int
    accuracy: float | None
    f1: float | None
    recall: float | None
    brier: float | None
    observed_positive_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LivePerformance:
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    def counted(self) -> dict[str, dict[str, float | int | None]]:
        """Each metric with the count of labelled rows it was computed on."""
        return {
            name: {"value": getattr(self, name), "labelled_rows": self.labelled_rows}
            for name in ("accuracy", "f1", "recall", "brier")
        }


def live_performance(joined: pd.DataFrame, min_labelled: int) -> LivePerformance:
    """Accuracy, F1, recall (positive class 1) and Brier score of the rows with an outcome."""
    from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, recall_score

    labelled = joined[joined[OBSERVED].notna()] if OBSERVED in joined else joined.iloc[:0]
    n = len(labelled)
    if n < min_labelled or n == 0:
        return LivePerformance(INSUFFICIENT_DATA, n, min_labelled, None, None, None, None, None)
    y = labelled[OBSERVED].astype(int).to_numpy()
    predicted = labelled[LABEL].astype(int).to_numpy()
    proba = labelled[PROBABILITY].astype(float).to_numpy()

    def r(value: float) -> float:
        return round(float(value), 4)

    return LivePerformance(
        status=OK,
        labelled_rows=n,
        min_labelled=min_labelled,
        accuracy=r(accuracy_score(y, predicted)),
        f1=r(f1_score(y, predicted, pos_label=1, zero_division=0)),
        recall=r(recall_score(y, predicted, pos_label=1, zero_division=0)),
        brier=r(brier_score_loss(y, proba, pos_label=1)),
        observed_positive_rate=r(y.mean()),
    )
