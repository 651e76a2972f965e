"""The monitoring DAG's steps, one call per task: take the hospitals' feedback files, compute
drift and live performance per model version over a window of the prediction log, write the
report, and fold labelled outcomes into a delivery when the served model has degraded.

The statistics live in `mlplatform.monitoring`; this module reads and writes the lake and
MLflow with the settings the task resolved.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

import pandas as pd

from mlplatform import registry
from mlplatform.lake import Lake
from mlplatform.settings import Settings
from mlplatform.spec import SPEC
from mlplatform.store import (
    FEEDBACK_DONE,
    FEEDBACK_INCOMING,
    MONITORING,
    PREDICTION_LOG,
    DataStore,
    prediction_log_columns,
)

log = logging.getLogger(__name__)

FEEDBACK_SOURCE = "feedback"  # the landing-zone source of labelled outcomes
FEEDBACK_REJECTED = "feedback/rejected/"
INSUFFICIENT_REPORT = (
    "<!doctype html><html><body><h1>No drift report</h1><p>Too few predictions in this window "
    "to test drift: the summary says <code>insufficient_data</code>.</p></body></html>"
)


def window_of(end: datetime, hours: float) -> tuple[datetime, datetime, str]:
    """[start, end) and the window's id: `<end, UTC, to the second>-<hours>h`. The end is kept
    exact: rounding it down would leave the newest predictions out of an on-demand run."""
    # A plain UTC datetime: Airflow hands over a pendulum one, whose zone pandas drops.
    end = datetime.fromtimestamp(end.timestamp(), UTC)
    return end - timedelta(hours=hours), end, f"{end:%Y-%m-%dT%H%M%SZ}-{hours:g}h"


def stored_outcomes(store: DataStore) -> pd.DataFrame | None:
    """Every outcome received, merged: one per prediction id (`merge_outcomes`' rule)."""
    from mlplatform.monitoring.feedback import merge_outcomes

    received = store.read_feedback()
    if not len(received):
        return None
    # In arrival order: files written in the same second do not list in the order they came.
    return merge_outcomes(None, received.sort_values("received_at", kind="stable")).outcomes


def take_feedback_files(settings: Settings) -> dict[str, Any]:
    """Bulk feedback CSVs under `feedback/incoming/`: valid outcomes are stored like the API's,
    full labelled rows are kept for retraining, bad rows and refused files go to
    `feedback/rejected/` with the reason, and each file moves to `feedback/done/`."""
    from mlplatform.monitoring.feedback import (
        FeedbackFileRejected,
        outcomes_frame,
        parse_feedback_csv,
    )

    store = DataStore(Lake(settings))
    lake, now = store.lake, datetime.now(UTC)
    taken: dict[str, Any] = {}
    for key in sorted(k for k in lake.list(FEEDBACK_INCOMING) if k.lower().endswith(".csv")):
        name = PurePosixPath(key).name
        try:
            parsed = parse_feedback_csv(lake.get(key), name, now)
        except FeedbackFileRejected as err:
            lake.put_atomic(f"{FEEDBACK_REJECTED}{name}.reason.txt", str(err).encode())
            lake.move(key, f"{FEEDBACK_REJECTED}{name}")
            taken[name] = {"rejected_file": str(err)}
            continue
        if parsed.outcomes:
            store.write_feedback(outcomes_frame(parsed.outcomes, now), now)
        if parsed.rows is not None and len(parsed.rows):
            lake.write_parquet(f"{FEEDBACK_DONE}rows/{name}.parquet", parsed.rows)
        if len(parsed.rejected):
            lake.write_parquet(f"{FEEDBACK_REJECTED}{name}.parquet", parsed.rejected.astype(str))
        lake.move(key, f"{FEEDBACK_DONE}{name}")
        taken[name] = {"outcomes": len(parsed.outcomes), "rejected_rows": len(parsed.rejected)}
    return taken


def _reference(version: Any, store: DataStore, settings: Settings) -> pd.DataFrame:
    """The version's reference: the training split of the dataset version it names, and its
    out-of-fold predictions on it, as its training run logged them (computed for a version
    whose run has none, with the training's folds and seed)."""
    from mlplatform.monitoring.drift import REFERENCE_ARTIFACT, reference_frame

    run_id = version.tags.get(registry.TRAINING_RUN_TAG)
    logged = registry.logged_frame(run_id, REFERENCE_ARTIFACT) if run_id else None
    if logged is not None:
        return logged
    model = registry.load_pipeline(
        registry.model_uri(settings.REGISTERED_MODEL_NAME, version=version.version)
    )
    metadata = store.read_version(version.tags["dataset_version"])
    train = store.load_split("train", metadata, SPEC)
    return reference_frame(model, train, settings.CV_FOLDS, settings.RANDOM_SEED)


def compute(
    settings: Settings, end: datetime | None = None, window_hours: float | None = None
) -> dict[str, Any]:
    """One monitoring run over the window ending at `end` (now) of `window_hours` (the setting):
    a summary per model version seen in the window (the champion always, for an explicit
    insufficient-data result), the champion's Evidently report, written to the lake and logged
    to MLflow. A version without a training split to compare with (registered by hand) is
    listed under `skipped` with the reason."""
    from dataclasses import replace

    from mlplatform.monitoring.policy import Thresholds
    from mlplatform.monitoring.summary import summarise, window_by_version

    thresholds = Thresholds.from_settings(settings)
    if window_hours is not None:
        thresholds = replace(thresholds, window_hours=window_hours)
    start, end, window_id = window_of(end or datetime.now(UTC), thresholds.window_hours)
    store = DataStore(Lake(settings))
    logged = store.read_dated(PREDICTION_LOG, start, end)
    windows = window_by_version(logged, start, end) if len(logged) else {}
    champion = registry.get_champion(settings)
    if champion is not None:  # an explicit result for the champion, even with no traffic
        windows.setdefault(
            str(champion.version), pd.DataFrame(columns=prediction_log_columns(SPEC))
        )
    outcomes = stored_outcomes(store)
    client = registry.configure(settings)
    summaries, reports, skipped = [], {}, {}
    for version, window in sorted(windows.items()):
        mv = client.get_model_version(settings.REGISTERED_MODEL_NAME, version)
        test_f1 = mv.tags.get(f"test_{SPEC.optimise_metric}")
        try:
            reference = _reference(mv, store, settings)
        except Exception as err:  # e.g. no dataset version tag: nothing to compare with
            skipped[version] = f"no reference to compare with: {type(err).__name__}: {err}"[:300]
            continue
        summary, html = summarise(
            window,
            reference,
            model_version=version,
            window_start=start,
            window_end=end,
            champion_f1=float(test_f1) if test_f1 is not None else None,
            thresholds=thresholds,
            outcomes=outcomes,
            model_name=settings.REGISTERED_MODEL_NAME,
        )
        summaries.append(summary.to_dict())
        if html:
            reports[version] = html
    champion_version = str(champion.version) if champion is not None else None
    champion_summary = next((s for s in summaries if s["model_version"] == champion_version), None)
    run = {
        "window": window_id,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "computed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "champion_version": champion_version,
        "status": champion_summary["status"] if champion_summary else "insufficient_data",
        "degraded": bool(champion_summary and champion_summary["decision"]["degraded"]),
        "summaries": summaries,
        "skipped": skipped,
    }
    html = reports.get(champion_version or "") or next(iter(reports.values()), INSUFFICIENT_REPORT)
    run["prefix"] = store.write_monitoring(window_id, run, html.encode())
    run["mlflow_run_id"] = _log_run(run, html, settings)
    return run


def _log_run(run: dict[str, Any], html: str, settings: Settings) -> str:
    """The monitoring run in MLflow: figures per version, the summary and the HTML report."""
    import mlflow

    from mlplatform.tracking import KIND

    registry.configure(settings)
    mlflow.set_experiment(settings.MLFLOW_EXPERIMENT_NAME)
    tags = {KIND: "monitoring", "window": run["window"], "status": run["status"]}
    if run["champion_version"]:
        tags["model_version"] = run["champion_version"]
    with mlflow.start_run(run_name=f"monitoring {run['window']}", tags=tags) as mlflow_run:
        for summary in run["summaries"]:
            figures = summary["decision"]["figures"]
            version = summary["model_version"]
            mlflow.log_metrics(
                {
                    f"v{version}_{name}": float(figures[name])
                    for name in ("rows", "drift_share", "labelled_rows", "live_f1")
                    if figures.get(name) is not None
                }
                | {f"v{version}_degraded": float(summary["decision"]["degraded"])}
            )
        mlflow.log_dict(run, "summary.json")
        mlflow.log_text(html, "report.html")
    return str(mlflow_run.info.run_id)


def labelled_rows(store: DataStore) -> pd.DataFrame:
    """Every logged prediction with an observed outcome (features and label), plus the full
    labelled rows of bulk files: what retraining may learn from."""
    from mlplatform.monitoring.feedback import join_outcomes
    from mlplatform.monitoring.performance import OBSERVED

    outcomes = stored_outcomes(store)
    frames = []
    if outcomes is not None:
        first = pd.to_datetime(outcomes["received_at"], utc=True).min()
        since = first - timedelta(days=30)  # an outcome comes back within weeks of its prediction
        logged = store.read_dated(PREDICTION_LOG, since.to_pydatetime(), datetime.now(UTC))
        if len(logged):
            joined = join_outcomes(logged, outcomes)
            frames.append(joined[joined[OBSERVED].notna()])
    bulk = [k for k in store.lake.list(f"{FEEDBACK_DONE}rows/") if k.endswith(".parquet")]
    frames += [store.lake.read_parquet(k) for k in bulk]
    columns = [*SPEC.feature_names, OBSERVED]
    return pd.concat([f[columns] for f in frames], ignore_index=True) if frames else pd.DataFrame()


def fold_in_feedback(run: dict[str, Any], settings: Settings) -> str | None:
    """When the champion degraded and outcomes came back: deliver every labelled row as the
    `feedback` source and publish the dataset version that includes them (the ETL's own steps),
    so the retraining the alarm starts learns from them. Returns the version, or None."""
    from mlplatform import etl
    from mlplatform.ingest import deliver_bytes
    from mlplatform.monitoring.feedback import feedback_delivery

    if not run["degraded"]:
        return None
    store = DataStore(Lake(settings))
    rows = labelled_rows(store)
    if rows.empty:
        return None
    deliver_bytes(FEEDBACK_SOURCE, "outcomes.data", feedback_delivery(rows), settings)
    metadata = etl.build_version(settings)
    etl.publish(metadata, settings)
    etl.log_to_mlflow(metadata, settings)
    # The alarm starts retraining: no second start from the dataset Asset for this version.
    etl.mark_announced(metadata.dataset_version, settings)
    return metadata.dataset_version


def _alarm_key(version: str) -> str:
    return f"{MONITORING}alarms/v{version}.json"


def alarm_due(run: dict[str, Any], settings: Settings) -> bool:
    """Degraded, and not alarmed for this champion within the last window: an hourly run over
    a 24-hour window would otherwise start retraining every hour for the same traffic."""
    if not run["degraded"]:
        return False
    lake = Lake(settings)
    key = _alarm_key(run["champion_version"])
    if not lake.exists(key):
        return True
    last = datetime.fromisoformat(json.loads(lake.get(key))["window_end"])
    hours = next(s for s in run["summaries"] if s["model_version"] == run["champion_version"])
    window = timedelta(hours=hours["thresholds"]["window_hours"])
    return datetime.fromisoformat(run["window_end"]) - last >= window


def record_alarm(run: dict[str, Any], settings: Settings) -> None:
    """Remember the alarm (after its Asset event went out)."""
    record = {"window": run["window"], "window_end": run["window_end"]}
    Lake(settings).put_atomic(_alarm_key(run["champion_version"]), json.dumps(record).encode())


def alarm_extra(run: dict[str, Any], dataset_version: str | None) -> dict[str, Any]:
    """What the model-degraded Asset event carries into retraining's decision record."""
    summary = next(s for s in run["summaries"] if s["model_version"] == run["champion_version"])
    decision = summary["decision"]
    return json.loads(
        json.dumps(
            {
                "window": run["window"],
                "model_version": run["champion_version"],
                "branches": decision["branches"],
                "reasons": decision["reasons"],
                "figures": decision["figures"],
                "drift_without_labels": decision["drift_without_labels"],
                "feedback_dataset_version": dataset_version,
                "report": run["prefix"] + "report.html",
            },
            default=str,
        )
    )
