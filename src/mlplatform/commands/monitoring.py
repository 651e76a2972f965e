"""Monitoring subcommands: send a shifted stream of rows with their outcomes, run the monitor,
and show what it found (also the last step of `make demo`)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from mlplatform.settings import Settings, get_settings

# Hospitals whose patients differ from Cleveland's (the training data): the shifted stream.
SHIFTED_SOURCES = ("switzerland", "va")


def labelled_rows(sources: tuple[str, ...], settings: Settings) -> Any:
    """The sources' valid rows the model answers for (features and the observed label)."""
    from mlplatform.build import RawDelivery, validate_all
    from mlplatform.features import too_many_missing
    from mlplatform.ingest import seed_file
    from mlplatform.spec import SPEC

    raw = [RawDelivery(s, s, "-", seed_file(s, settings).read_bytes()) for s in sources]
    valid, _ = validate_all(raw)
    valid = valid[~too_many_missing(valid)].reset_index(drop=True)
    return valid[list(SPEC.feature_names)], (valid[SPEC.raw_target] > 0).astype(int)


def send_with_outcomes(settings: Settings, sources: tuple[str, ...]) -> int:
    """POST the rows to /predict/batch, then their observed outcomes to /feedback."""
    import httpx

    from mlplatform.serving.guard import API_KEY_HEADER

    features, labels = labelled_rows(sources, settings)
    headers = {API_KEY_HEADER: settings.API_KEY} if settings.API_KEY else {}
    rows = [
        {
            k: (None if v != v else int(v) if float(v).is_integer() else float(v))
            for k, v in r.items()
        }
        for r in features.to_dict("records")
    ]
    step = min(settings.MAX_BATCH_ROWS, settings.MAX_FEEDBACK_ROWS)
    with httpx.Client(base_url=settings.fastapi_url, headers=headers, timeout=60) as client:
        for start in range(0, len(rows), step):
            resp = client.post("/predict/batch", json={"rows": rows[start : start + step]})
            resp.raise_for_status()
            outcomes = [
                {"prediction_id": p["prediction_id"], "label": int(label)}
                for p, label in zip(
                    resp.json()["predictions"], labels[start : start + step], strict=True
                )
            ]
            client.post("/feedback", json={"outcomes": outcomes}).raise_for_status()
    return len(rows)


def wait_for_log_flush(settings: Settings, timeout: float = 60) -> None:
    """Until the service has written its buffered predictions to the lake."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = httpx.get(f"{settings.fastapi_url}/metrics", timeout=10).text
        line = next(m for m in metrics.splitlines() if m.startswith("prediction_log_buffered "))
        if float(line.split()[1]) == 0:
            return
        time.sleep(1)
    raise TimeoutError(f"the prediction log was not flushed within {timeout:.0f} s")


def print_monitoring(settings: Settings) -> dict[str, Any]:
    """The latest monitoring run as the service shows it, in a few lines."""
    import httpx

    run: dict[str, Any] = httpx.get(f"{settings.fastapi_url}/monitoring", timeout=30).json()
    for s in run["summaries"]:
        drifted = s["drift"]["drifted_features"]
        perf = s["performance"]
        f1 = "n/a" if perf.get("f1") is None else f"{perf['f1']:.3f}"
        print(
            f"model version {s['model_version']}: {s['status']} over {s['rows']} rows; drift share "
            f"{s['drift']['drift_share']}, drifted: {', '.join(drifted) or '-'}; live F1 {f1} on "
            f"{perf['labelled_rows']} outcomes (test F1 {s['champion_f1']})"
        )
        for reason in s["decision"]["reasons"]:
            print(f"  - {reason}")
    print(f"report: {settings.fastapi_url}/monitoring/report")
    return run


def monitoring_step(settings: Settings) -> None:
    """`make demo`: shifted patients with their outcomes -> monitor -> retraining by itself."""
    from mlplatform.airflow_client import AirflowClient

    client = AirflowClient(settings)
    client.wait_for_dag("retrain")
    seen = {r["dag_run_id"] for r in client.runs("retrain")}
    sent = send_with_outcomes(settings, SHIFTED_SOURCES)
    print(f"sent {sent} {'/'.join(SHIFTED_SOURCES)} patients to /predict/batch, and their outcomes")
    wait_for_log_flush(settings)
    client.run("monitor", timeout=900)
    started = time.monotonic()
    run = print_monitoring(settings)
    if not run["degraded"]:
        print("no degradation: no retraining")
        return
    new = client.wait_for_new_run("retrain", seen, timeout=600)
    print(
        f"retrain: started by the model-degraded Asset ({new['run_type']}) "
        f"{time.monotonic() - started:.0f} s after the monitor finished"
    )
    client.follow("retrain", new["dag_run_id"])


def cmd_monitor_demo(args: argparse.Namespace) -> int:
    monitoring_step(get_settings())
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "monitor-demo",
        help="send shifted patients and their outcomes, run the monitor, show drift and retraining",
    )
    p.set_defaults(func=cmd_monitor_demo)
