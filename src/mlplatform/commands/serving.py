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

    from mlplatform.serving.guard import API_KEY_HEADER
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
    """Upload `path`, or `rows` synthetic rows plus `bad_rows` invalid ones, to batch/incoming/."""
    import pandas as pd

    from mlplatform.lake import Lake
    from mlplatform.spec import SPEC
    from mlplatform.store import DataStore
    from mlplatform.synthetic import synthetic_features

    store = DataStore(Lake(settings))
    if path is not None:
        return store.drop_batch_file(path.name, path.read_bytes())
    frame = synthetic_features(rows, seed=int(time.time()), missing_rate=0.02)
    bad = synthetic_features(bad_rows, seed=1).astype(object)
    first, second = SPEC.numeric[0].name, SPEC.categorical[0].name
    bad[first] = "not a number"
    bad[second] = max(SPEC.categorical[0].codes) + 7  # not a code
    frame = pd.concat([frame, bad], ignore_index=True)
    name = f"rows-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    return store.drop_batch_file(name, frame.to_csv(index=False).encode())


def serving_step(settings: Settings) -> None:
    """`make demo`: one prediction from the running service, one batch run, the page URL."""
    from mlplatform import registry
    from mlplatform.airflow_client import AirflowClient
    from mlplatform.lake import Lake
    from mlplatform.store import DataStore

    store = DataStore(Lake(settings))
    champion = registry.get_champion(settings)
    if champion is not None:  # the service picks up a new champion within its poll interval
        wait_for_version(settings, champion.version)
    predict_example(settings)
    key = drop_batch(settings, rows=200, bad_rows=2)
    print(f"dropped s3://{settings.DATA_REPO_BUCKET_NAME}/{key}; running the batch_predict DAG")
    AirflowClient(settings).run("batch_predict", timeout=600)
    prefix = store.latest_batch_output(key)
    out = store.read_batch_output(prefix)
    rejected = store.read_batch_output(prefix, kind="rejected")
    print(f"{len(out)} rows scored, {len(rejected)} rejected, under {prefix}")
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
    from mlplatform.lake import Lake
    from mlplatform.store import DataStore

    s = get_settings()
    results = run(DataStore(Lake(s)), s)
    for result in results:
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
        "batch-run", help="score batch/incoming/ now, on BATCH_ENGINE (the DAG's logic)"
    )
    p.set_defaults(func=cmd_batch_run)
