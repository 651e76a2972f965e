"""Where a request's time goes, without a network: the service's ASGI app (a synthetic
logistic-regression model on ONNX, no registry, no background threads) and the bare-ASGI ceiling
app, driven in-process with the same bodies.

    uv run python benchmarks/request_path_profile.py            # µs per request, both apps
    uv run python benchmarks/request_path_profile.py --profile  # plus cProfile's top entries

It leaves out what uvicorn does (HTTP parsing, sockets), which is the same for both apps. For a
quick look over HTTP without the stack, `service_factory` is the same app for uvicorn:

    cd benchmarks && uv run uvicorn --factory request_path_profile:service_factory --port 8801
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "code"), str(ROOT / "benchmarks")]

from ceiling_app import app as ceiling  # noqa: E402
from serving_helpers import holder_serving  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from synthetic_model import fitted_pipeline  # noqa: E402

from mlplatform.inference.contract import FEATURES  # noqa: E402
from mlplatform.serving.app import create_app, freeze_heap  # noqa: E402
from mlplatform.serving.schemas import example_patient  # noqa: E402
from mlplatform.settings import Settings  # noqa: E402
from mlplatform.synthetic import synthetic_features  # noqa: E402


def scope_for(path: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8800),
        "state": {},
    }


async def call(app: Any, path: str, body: bytes) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope_for(path, body), receive, send)
    return status


async def per_request_us(app: Any, path: str, body: bytes, n: int) -> float:
    for _ in range(50):
        assert await call(app, path, body) == 200
    start = time.perf_counter()
    for _ in range(n):
        await call(app, path, body)
    return (time.perf_counter() - start) / n * 1e6


def service_factory() -> Any:
    """The service with a synthetic model and no registry or background threads."""
    settings = Settings(API_KEY="", MINIO_PORT=9)
    pipeline = fitted_pipeline(LogisticRegression(max_iter=500))
    app = create_app(settings, holder_serving(pipeline, settings), background=False)
    freeze_heap()  # as the service's start-up does
    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=5_000, help="requests per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    service = service_factory()
    rows = [
        {k: (int(v) if float(v).is_integer() else float(v)) for k, v in r.items()}
        for r in synthetic_features(100, seed=9)[list(FEATURES)].to_dict("records")
    ]
    cases = {
        "1 row": ("/predict", json.dumps(example_patient()).encode(), args.n),
        "100 rows": ("/predict/batch", json.dumps({"rows": rows}).encode(), args.n // 20),
    }
    loop = asyncio.new_event_loop()
    for name, (path, body, n) in cases.items():
        for i in range(args.rounds):
            bare = loop.run_until_complete(per_request_us(ceiling, path, body, n))
            ours = loop.run_until_complete(per_request_us(service, path, body, n))
            print(
                f"{name:9} round {i + 1}: ceiling {bare:7.1f} µs, service {ours:7.1f} µs, "
                f"ratio {bare / ours:.2f}"
            )
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            loop.run_until_complete(per_request_us(service, path, body, n))
            profiler.disable()
            print(f"\n{name}: top entries by own time")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    service.state.prediction_log._buffer.clear()
    return 0


if __name__ == "__main__":
    sys.exit(main())
