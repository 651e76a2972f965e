"""One monitoring computation per model version, its summary, and its Prometheus gauges."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from mlplatform.monitoring.drift import DataDrift, PredictionDrift, compute_drift
from mlplatform.monitoring.feedback import join_outcomes
from mlplatform.monitoring.performance import LivePerformance, live_performance
from mlplatform.monitoring.policy import Decision, Status, Thresholds, decide

TIMESTAMP = "timestamp"  # prediction log columns
MODEL_VERSION = "model_version"

DRIFT_SHARE = "monitoring_drift_share"
LIVE_F1 = "monitoring_live_f1"
LABELLED_ROWS = "monitoring_labelled_rows"
DEGRADED = "monitoring_degraded"
LAST_RUN = "monitoring_last_run_timestamp_seconds"
GAUGE_HELP = {
    DRIFT_SHARE: "Share of features whose drift test fired in the latest window",
    LIVE_F1: "F1 of the model version on the latest window's joined outcomes",
    LABELLED_ROWS: "Predictions with an observed outcome in the latest window",
    DEGRADED: "1 when the degradation policy fired for the model version, else 0",
    LAST_RUN: "Unix time of the latest monitoring run",
}


@dataclass(frozen=True)
class MonitoringSummary:
    model_version: str
    window_start: str  # ISO 8601, UTC
    window_end: str
    computed_at: str
    rows: int
    status: Status
    drift: DataDrift
    prediction_drift: PredictionDrift
    performance: LivePerformance
    decision: Decision
    thresholds: Thresholds
    champion_f1: float | None
    model_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("drift", "prediction_drift", "performance", "decision", "thresholds"):
            data[name] = data[name].to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MonitoringSummary:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["drift"] = DataDrift.from_dict(data["drift"])
        values["prediction_drift"] = PredictionDrift.from_dict(data["prediction_drift"])
        values["performance"] = LivePerformance.from_dict(data["performance"])
        values["decision"] = Decision.from_dict(data["decision"])
        values["thresholds"] = Thresholds.from_dict(data["thresholds"])
        return cls(**values)


def window_by_version(log: pd.DataFrame, start: datetime, end: datetime) -> dict[str, pd.DataFrame]:
    """The prediction log rows with start <= timestamp < end, per model version."""
    when = pd.to_datetime(log[TIMESTAMP], utc=True)
    window = log[(when >= pd.Timestamp(start)) & (when < pd.Timestamp(end))]
    return {
        str(version): rows.reset_index(drop=True)
        for version, rows in window.groupby(MODEL_VERSION, sort=True)
    }


def summarise(
    window: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    model_version: str,
    window_start: datetime,
    window_end: datetime,
    champion_f1: float | None,
    thresholds: Thresholds,
    outcomes: pd.DataFrame | None = None,
    model_name: str | None = None,
    html: bool = True,
) -> tuple[MonitoringSummary, str | None]:
    """Drift, prediction drift, live performance and the policy's decision for one version's
    window. `reference` is `drift.reference_frame(champion, train split)`; `outcomes` is the
    stored outcome table. Returns the summary and Evidently's HTML (None below min_rows)."""
    drift = compute_drift(
        window, reference, thresholds.min_rows, thresholds.drift_share_threshold, html
    )
    performance = live_performance(join_outcomes(window, outcomes), thresholds.min_labelled)
    decision = decide(
        len(window),
        drift.data.drift_share,
        performance.labelled_rows,
        performance.f1,
        champion_f1,
        thresholds,
    )
    summary = MonitoringSummary(
        model_version=model_version,
        window_start=window_start.astimezone(UTC).isoformat(),
        window_end=window_end.astimezone(UTC).isoformat(),
        computed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        rows=len(window),
        status=decision.status,
        drift=drift.data,
        prediction_drift=drift.prediction,
        performance=performance,
        decision=decision,
        thresholds=thresholds,
        champion_f1=champion_f1,
        model_name=model_name,
    )
    return summary, drift.html


@dataclass(frozen=True)
class Gauge:
    name: str
    labels: dict[str, str]
    value: float


def prometheus_gauges(summaries: list[MonitoringSummary], now: datetime) -> list[Gauge]:
    """The gauge samples of the latest summaries. A figure that was not computed (drift below
    min_rows, F1 below min_labelled) has no sample rather than a made-up 0."""
    gauges = []
    for s in summaries:
        labels = {MODEL_VERSION: s.model_version}
        if s.drift.drift_share is not None:
            gauges.append(Gauge(DRIFT_SHARE, labels, float(s.drift.drift_share)))
        if s.performance.f1 is not None:
            gauges.append(Gauge(LIVE_F1, labels, float(s.performance.f1)))
        gauges.append(Gauge(LABELLED_ROWS, labels, float(s.performance.labelled_rows)))
        gauges.append(Gauge(DEGRADED, labels, float(s.decision.degraded)))
    gauges.append(Gauge(LAST_RUN, {}, now.timestamp()))
    return gauges


def exposition(gauges: list[Gauge]) -> str:
    """The gauges in Prometheus' text format: each name's samples together, HELP and TYPE once."""
    lines, seen = [], set()
    for g in sorted(gauges, key=lambda g: g.name):
        if g.name not in seen:
            seen.add(g.name)
            lines += [f"# HELP {g.name} {GAUGE_HELP[g.name]}", f"# TYPE {g.name} gauge"]
        labels = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(g.labels.items()))
        lines.append(f"{g.name}{{{labels}}} {g.value!r}" if labels else f"{g.name} {g.value!r}")
    return "\n".join(lines) + "\n"
