"""The model card of a model version (Markdown), rendered from what `refit_and_log` measured.

Pure: a report dict in, text out. MLflow holds it as `model_card.md` of the training run; the
web page shows the same facts from `/model`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlplatform.dataset import DatasetSpec
from mlplatform.spec import SPEC


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def interval_rows(intervals: Mapping[str, Mapping[str, Any]]) -> list[str]:
    rows = ["| metric | estimate | 95% interval |", "|---|---|---|"]
    for name, i in intervals.items():
        rows.append(f"| {name} | {_num(i['estimate'])} | [{_num(i['low'])}, {_num(i['high'])}] |")
    return rows


def source_rows(table: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> list[str]:
    rows = [
        "| source | rows | positives | mean P | " + " | ".join(metrics) + " |",
        "|---" * (4 + len(metrics)) + "|",
    ]
    for r in table:
        values = " | ".join(_num(r["metrics"].get(m)) for m in metrics)
        rows.append(
            f"| {r['source']} | {r['rows']} | {r['positives']} | {_num(r['mean_proba'])} | "
            f"{values} |"
        )
    return rows


def render_model_card(
    report: Mapping[str, Any],
    data: Mapping[str, Any],
    spec: DatasetSpec = SPEC,
    reliability_plot: str = "plots/reliability.png",
) -> str:
    metrics = [*spec.report_metrics, "brier"]
    calibration = report["calibration"]
    test = report["test"]
    deliveries = data.get("deliveries", [])
    sources = ", ".join(f"{d['source']} ({d['rows']} rows)" for d in deliveries) or "unknown"
    lines = [
        f"# Model card: {spec.name} classifier",
        "",
        "## Model",
        f"- family: `{report['family']}`, parameters: `{report['params']}`",
        f"- calibration: `{calibration['method']}` (chosen by out-of-fold "
        f"{calibration['criterion']} over {calibration['folds']} folds)",
        f"- decision threshold: {report['threshold']:.4f} for policy `{report['threshold_policy']}`"
        " (chosen on out-of-fold predictions of the training split; inside the model, so every"
        " consumer gives the same label)",
        "",
        "## Data",
        f"- dataset version: `{data.get('dataset_version', 'unknown')}`",
        f"- sources: {sources}",
        f"- rows: {data.get('counts', {})}",
        "",
        "## Test metrics (bootstrap 95% intervals, resampled within each source)",
        *interval_rows(test["intervals"]),
        "",
        f"Calibration on the test split: brier {_num(test['calibration']['brier'])}, "
        f"log-loss {_num(test['calibration']['log_loss'])}, "
        f"ECE {_num(test['calibration']['ece'])} (10 equal-mass bins).",
        "",
        f"![reliability]({reliability_plot})",
        "",
        "## By hospital: test split",
        *source_rows(test["by_source"], metrics),
        "",
        "## By hospital: cross-validation (out-of-fold, training split)",
        *source_rows(report["cv_by_source"], metrics),
        "",
    ]
    if report["leave_one_source_out"]:
        lines += [
            "## Transportability: leave-one-hospital-out (each row scored by a model fitted on"
            " the other hospitals)",
            *source_rows(report["leave_one_source_out"], metrics),
            "",
        ]
    lines += [
        "## Intended use and limits",
        "- Decision support for trained clinicians on adult patients like those of the source"
        " hospitals; not a diagnosis, and not for other populations without re-validation.",
        "- The test split is small: read the intervals, not only the estimates; a hospital"
        " with few rows has wide or undefined per-source figures.",
        "- The hospitals differ in prevalence and in which features they measured; check the"
        " leave-one-hospital-out table before using the model at a new hospital.",
        "- A row with more unknown features than training keeps is refused, never guessed.",
    ]
    return "\n".join(lines) + "\n"


def card_from_tags(tags: dict[str, str]) -> dict[str, Any]:
    """What /model and the web page show of a version's model card, from its tags
    (training.version_tags): threshold, calibration, test intervals, per-hospital table.
    Empty for a version registered before these tags existed."""
    import json

    card: dict[str, Any] = {}
    if "threshold" in tags:
        card["threshold"] = float(tags["threshold"])
    for key in ("calibration", "threshold_policy"):
        if tags.get(key):
            card[key] = tags[key]
    intervals = {}
    for key, value in tags.items():
        name = key.removeprefix("test_")
        low, high = tags.get(f"{key}_ci_low"), tags.get(f"{key}_ci_high")
        if key.startswith("test_") and low is not None and high is not None:
            intervals[name] = {"estimate": float(value), "low": float(low), "high": float(high)}
    if intervals:
        card["intervals"] = intervals
    if tags.get("by_source"):
        card["by_source"] = json.loads(tags["by_source"])
    return card
