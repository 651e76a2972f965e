"""The degradation policy: when does a model version need retraining?

Degraded when either branch fires:
- performance: over at least `min_labelled` labelled rows, live F1 < champion test F1 - `f1_margin`;
- drift: over at least `min_rows` window rows, the share of drifted features
  >= `drift_share_threshold`.

Below those counts a branch is not evaluated: too little traffic is "insufficient data", never an
alarm. The decision keeps the figures that caused it, so the retraining record can show them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

Status = Literal["ok", "insufficient_data", "degraded"]
OK: Status = "ok"
INSUFFICIENT_DATA: Status = "insufficient_data"
DEGRADED: Status = "degraded"

# Thresholds field -> the Settings name that configures it.
SETTINGS_NAMES = {
    "window_hours": "MONITOR_WINDOW_HOURS",
    "min_rows": "MONITOR_MIN_ROWS",
    "min_labelled": "MONITOR_MIN_LABELLED",
    "drift_share_threshold": "DRIFT_SHARE_THRESHOLD",
    "f1_margin": "F1_DROP_MARGIN",
}


@dataclass(frozen=True)
class Thresholds:
    """Every monitoring threshold; defaults from `benchmarks/drift_figures.py` (500-row windows):
    at share 0.3 (4 of 13 features) no in-distribution window alarmed, and 13 independent
    tests at p < 0.05 would alarm 0.3% of the time, while 30% Switzerland/VA patients always
    did; live F1 on 100 labelled in-distribution rows fell 0.1 below the test F1 in 0.4% of
    windows (3.1% with 50 rows)."""

    window_hours: float = 24.0  # hospital traffic is low: a day of predictions per window
    min_rows: int = 100
    min_labelled: int = 100
    drift_share_threshold: float = 0.3
    f1_margin: float = 0.1

    def __post_init__(self) -> None:
        if self.window_hours <= 0 or self.min_rows < 1 or self.min_labelled < 1:
            raise ValueError(f"window_hours, min_rows and min_labelled must be positive: {self}")
        if not 0 < self.drift_share_threshold <= 1 or not 0 <= self.f1_margin < 1:
            raise ValueError(f"drift_share_threshold in (0, 1], f1_margin in [0, 1): {self}")

    @classmethod
    def from_settings(cls, settings: object) -> Thresholds:
        """From the platform Settings (names in SETTINGS_NAMES); a missing one keeps its default."""
        values = {
            name: getattr(settings, setting)
            for name, setting in SETTINGS_NAMES.items()
            if hasattr(settings, setting)
        }
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class Decision:
    """What the policy decided and why. `branches` lists the branches that fired."""

    status: Status
    degraded: bool
    branches: list[str]
    # Drift fired while performance could not be judged (too few labels): retraining learns
    # from the data there is, and its record says so.
    drift_without_labels: bool
    figures: dict[str, Any]
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def decide(
    rows: int,
    drift_share: float | None,
    labelled_rows: int,
    live_f1: float | None,
    champion_f1: float | None,
    thresholds: Thresholds,
) -> Decision:
    """Apply the policy to one model version's window figures."""
    t = thresholds
    drift_judged = rows >= t.min_rows and drift_share is not None
    perf_judged = (
        labelled_rows >= t.min_labelled and live_f1 is not None and champion_f1 is not None
    )
    branches, reasons = [], []
    if drift_judged and drift_share is not None and drift_share >= t.drift_share_threshold:
        branches.append("drift")
        reasons.append(
            f"drift share {drift_share:.2f} >= {t.drift_share_threshold:.2f} over {rows} rows"
        )
    if perf_judged and live_f1 is not None and champion_f1 is not None:
        floor = champion_f1 - t.f1_margin
        if live_f1 < floor:
            branches.append("performance")
            reasons.append(
                f"live F1 {live_f1:.3f} < champion test F1 {champion_f1:.3f} - {t.f1_margin:.2f}"
                f" over {labelled_rows} labelled rows"
            )
    if not drift_judged:
        reasons.append(f"drift not judged: {rows} rows < {t.min_rows}")
    if not perf_judged:
        missing = "no champion test F1" if champion_f1 is None else "too few labels"
        reasons.append(
            f"performance not judged ({missing}): {labelled_rows} labelled rows"
            f" (needs {t.min_labelled})"
        )
    degraded = bool(branches)
    status = DEGRADED if degraded else OK if drift_judged or perf_judged else INSUFFICIENT_DATA
    return Decision(
        status=status,
        degraded=degraded,
        branches=branches,
        drift_without_labels="drift" in branches and not perf_judged,
        figures={
            "rows": rows,
            "drift_share": drift_share,
            "labelled_rows": labelled_rows,
            "live_f1": live_f1,
            "champion_f1": champion_f1,
            "drift_judged": drift_judged,
            "performance_judged": perf_judged,
            **t.to_dict(),
        },
        reasons=reasons,
    )
