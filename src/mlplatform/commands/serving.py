"""Serving subcommands: ask the running service for a prediction, drop a batch file, run batch."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from mlplatform.settings import Settings, get_settings


def wait_ready(settings: Settings, timeout: float = 120) -> dict[str, Any]:
    """Wait until the service has a model loaded; explain what is missing if it never does."""
    import httpx

    from mlplatform.errors import PlatformError

    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            resp = httpx.get(f"{settings.fastapi_url}/ready", timeout=5)
            body = resp.json()
            if resp.status_code == 200:
                return body
        except httpx.HTTPError as err:
            body = {"detail": f"the service at {settings.fastapi_url} does not answer: {err}"}
        time.sleep(1)
    raise PlatformError(str(body.get("detail", body)))


def wait_for_version(settings: Settings, version: str, timeout: float = 120) -> dict[str, Any]:
    """Wait until the service serves model `version`; its watcher polls the registry."""
    import httpx

    from mlplatform.errors import PlatformError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            resp = httpx.get(f"{settings.fastapi_url}/model", timeout=5)
            if resp.status_code == 200 and resp.json()["version"] == str(version):
                return dict(resp.json())
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise PlatformError(f"the service did not load model version {version} within {timeout:.0f} s")


def predict_example(settings: Settings) -> dict[str, Any]:
    import httpx

    from mlplatform.serving.app import API_KEY_HEADER
    from mlplatform.serving.schemas import example_patient

    wait_ready(settings)
    headers = {API_KEY_HEADER: settings.API_KEY} if settings.API_KEY else {}
    patient = example_patient()
    resp = httpx.post(f"{settings.fastapi_url}/predict", json=patient, headers=headers, timeout=30)
    print(f"POST {settings.fastapi_url}/predict {json.dumps(patient)}")
    print(f"-> {resp.status_code} {resp.text}")
    resp.raise_for_status()
    result: dict[str, Any] = resp.json()
    return result


def drop_batch(settings: Settings, rows: int, bad_rows: int, path: Path | None = None) -> str:
    """Upload `path`, or `rows` synthetic patients plus `bad_rows` invalid ones, to batch/incoming/."""
    import pandas as pd

    from mlplatform.batch import drop_file
    from mlplatform.lake import put_bytes_atomic
    from mlplatform.layout import BATCH_INCOMING
    from mlplatform.serving.samples import synthetic_features

    if path is not None:
        return put_bytes_atomic(
            settings.DATA_REPO_BUCKET_NAME, f"{BATCH_INCOMING}{path.name}", path.read_bytes()
        )
    frame = synthetic_features(rows, seed=int(time.time()), missing_rate=0.02)
    bad = synthetic_features(bad_rows, seed=1).astype(object)
    bad["age"] = "not a number"
    bad["cp"] = 9
    frame = pd.concat([frame, bad], ignore_index=True)
    return drop_file(frame, f"patients-{time.strftime('%Y%m%d-%H%M%S')}.csv", settings)


def serving_step(settings: Settings) -> None:
    """`make demo`: one prediction from the running service, one batch run, the page URL."""
    from mlplatform import registry
    from mlplatform.airflow_client import AirflowClient
    from mlplatform.batch import read_output

    champion = registry.get_champion(settings)
    if champion is not None:  # the service picks up a new champion within its poll interval
        wait_for_version(settings, champion.version)
    predict_example(settings)
    key = drop_batch(settings, rows=200, bad_rows=2)
    print(f"dropped s3://{settings.DATA_REPO_BUCKET_NAME}/{key}; running the batch_predict DAG")
    AirflowClient(settings).run("batch_predict", timeout=600)
    from mlplatform.batch import output_prefix

    out = read_output(output_prefix(key), settings)
    rejected = read_output(output_prefix(key), settings, kind="rejected")
    print(f"{len(out)} rows scored, {len(rejected)} rejected, under {output_prefix(key)}")
    print(out.head(3).to_string(index=False))
    print(f"\nWeb page: {settings.fastapi_url}/   API docs: {settings.fastapi_url}/docs")


def cmd_predict_example(args: argparse.Namespace) -> int:
    predict_example(get_settings())
    return 0


def cmd_batch_drop(args: argparse.Namespace) -> int:
    s = get_settings()
    key = drop_batch(s, args.rows, args.bad_rows, args.file)
    print(f"s3://{s.DATA_REPO_BUCKET_NAME}/{key}: trigger the `batch_predict` DAG to score it")
    return 0


def cmd_batch_run(args: argparse.Namespace) -> int:
    from mlplatform.batch import run

    for result in run(get_settings()):
        print(
            f"{result.input_key}: {result.scored} scored, {result.rejected} rejected -> "
            f"{result.output_prefix}"
        )
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("predict-example", help="POST one example patient to the service")
    p.set_defaults(func=cmd_predict_example)
    p = subparsers.add_parser(
        "batch-drop", help="upload a file (or synthetic patients) to batch/incoming/"
    )
    p.add_argument("--file", type=Path, help="a CSV or Parquet file with the 13 feature columns")
    p.add_argument("--rows", type=int, default=1000, help="synthetic patients when no --file")
    p.add_argument(
        "--bad-rows", type=int, default=0, help="invalid rows to add, to see them rejected"
    )
    p.set_defaults(func=cmd_batch_drop)
    p = subparsers.add_parser(
        "batch-run", help="score batch/incoming/ in this process (the DAG's logic)"
    )
    p.set_defaults(func=cmd_batch_run)
