"""Serving benchmark: this service against `mlflow models serve`, same champion, same requests.

    uv run python benchmarks/serving_bench.py            # or: make bench

Needs the local stack (registry + S3) with a champion, and Debian's `wrk`
(`apt-get install -y wrk`). It starts both servers on free loopback ports with one
worker each, warms each up, then loads them with identical requests (1 row at
concurrency 1, 8 and 32; 100-row batches at concurrency 8). The machine's speed drifts,
so the two servers take turns: every round runs every configuration on MLflow and then
on this service, and a ratio is only ever taken within one round. It prints each
round's req/s, rows/s, p50, p99 and errors (wrk's own latency histogram, read exactly
through its Lua `done` hook), then the median over rounds and the spread of the ratio.
A third server, the bare-ASGI ceiling (`benchmarks/ceiling_app.py`, same uvicorn flags), takes
its turn in every round too: the service's throughput as a share of it is the share of its
server's capacity the service keeps. Each round also times in-process `predict_proba` +
`predict` of the 100-row batch (the registered sklearn pipeline, and its ONNX twin), the
baseline of the batch endpoint's rows/s. Last, the batch job's logic (S3 CSV in, Parquet out)
against in-process `predict_proba` + `predict` on the same rows, interleaved the same way.
It ends with the issue's goals table. Everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from mlplatform import registry
from mlplatform.inference.contract import FEATURES
from mlplatform.localstack import export_env
from mlplatform.serving.schemas import example_patient
from mlplatform.settings import get_settings
from mlplatform.synthetic import synthetic_features

# The synthetic model helper is shared with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

BENCH_MODEL_SUFFIX = "_bench_synthetic"
SINGLE_ROW_CONCURRENCY = (1, 8, 32)
BATCH_ROWS, BATCH_CONCURRENCY = 100, 8
HERE = Path(__file__).resolve().parent
# The service's uvicorn flags (fastapi/entrypoint.sh); the ceiling app gets the same.
UVICORN_FLAGS = ["--http", "mlplatform.serving.nodelay:NoDelayHttpTools", "--no-access-log"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(cmd: list[str], env: dict[str, str], url: str, log: Path, timeout: float = 240) -> Any:
    """Start a server process, wait for `url` to answer 200, stop its process group at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited: see {log}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} not ready after {timeout:.0f} s: see {log}")
            time.sleep(1)
        yield proc.pid
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


@dataclass
class Result:
    req_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float = 0.0  # the server's CPU time (all its processes) per request


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its descendants (Linux /proc), so far.

    Per request, it is what a server costs whatever else runs on the machine: on a shared,
    loaded machine req/s follows the CPU share the scheduler gives, this does not."""
    parent: dict[int, int] = {}
    times: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        pid_ = int(stat.parent.name)
        parent[pid_] = int(fields[1])
        times[pid_] = int(fields[11]) + int(fields[12])
    ours, todo = set(), [pid]
    while todo:
        p = todo.pop()
        ours.add(p)
        todo.extend(c for c, pp in parent.items() if pp == p and c not in ours)
    return sum(times.get(p, 0) for p in ours) / os.sysconf("SC_CLK_TCK")


# wrk's `done` hook sees the exact latency histogram (µs) and every error counter.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {body}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT {{\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d, "
    .. "\\"errors\\": %d}}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def wrk(
    url: str, body: str, concurrency: int, seconds: float, tmp: Path, pid: int | None = None
) -> Result:
    """wrk's figures; with the server's `pid`, also its CPU time per request."""
    script = tmp / f"{uuid.uuid4().hex}.lua"
    script.write_text(WRK_SCRIPT.format(body=json.dumps(body)))
    cpu_before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script),
         url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    match = re.search(r"^RESULT (.*)$", out, re.M)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    r = json.loads(match.group(1))
    cpu = cpu_seconds(pid) - cpu_before if pid else 0.0
    return Result(
        req_s=r["requests"] / (r["duration_us"] / 1e6),
        p50_ms=r["p50_us"] / 1e3,
        p99_ms=r["p99_us"] / 1e3,
        errors=r["errors"],
        cpu_us=cpu / max(r["requests"], 1) * 1e6,
    )


def mlflow_records(rows: list[dict[str, Any]], uri: str) -> list[dict[str, Any]]:
    """The same rows, typed as the model signature wants them (MLflow enforces it)."""
    import mlflow

    schema = mlflow.models.get_model_info(uri).signature.inputs
    integer = {c.name for c in schema.inputs if str(c.type).lower().endswith(("long", "integer"))}
    return [{k: (int(v) if k in integer else float(v)) for k, v in row.items()} for row in rows]


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def in_process_rows_per_s(
    pipeline: Any, rows: list[dict[str, Any]], repeat: int = 50
) -> tuple[float, float]:
    """rows/s of in-process `predict_proba` + `predict` on `rows` (one call each per batch, as
    a Python caller would): the registered sklearn pipeline, and its ONNX twin."""
    import pandas as pd

    from mlplatform.inference.predictors import OnnxPredictor, convert_to_onnx

    frame = pd.DataFrame(rows, columns=list(FEATURES)).astype("float64")
    x = frame.to_numpy()

    def rate(predict: Any) -> float:
        predict()
        start = time.perf_counter()
        for _ in range(repeat):
            predict()
        return len(rows) * repeat / (time.perf_counter() - start)

    sklearn_rate = rate(lambda: (pipeline.predict_proba(frame), pipeline.predict(frame)))
    try:
        onnx = OnnxPredictor(convert_to_onnx(pipeline))
    except Exception as err:  # e.g. missing-value indicators: the service serves it on sklearn
        print(f"no ONNX twin for the in-process baseline ({type(err).__name__}): nan")
        return sklearn_rate, float("nan")
    return sklearn_rate, rate(lambda: onnx.predict(x))


def batch_logic_vs_in_process(
    settings: Any, rows: int, rounds: int
) -> list[tuple[float, float, float]]:
    """Per round, rows/s of in-process `predict_proba` + `predict` (the batch's outputs) and
    of the batch job's logic (S3 file in, Parquet out) on the same rows, given as CSV and as
    Parquet, back to back.

    A small file goes through first, so imports and connection set-up are not timed. The
    benchmark's files are deleted afterwards.
    """
    from mlplatform.batch import batch_model
    from mlplatform.inference.loading import load_champion
    from mlplatform.lake import Lake
    from mlplatform.store import DataStore

    store = DataStore(Lake(settings))
    pipeline = load_champion(settings, fast=False).predictor.pipeline  # type: ignore[attr-defined]
    with batch_model(settings) as model:  # as the DAG's task loads it
        print(f"batch scores with: {model.backend_reason[:120]}")
        return _batch_rounds(store, model, pipeline, rows, rounds, settings.BATCH_CHUNK_ROWS)


def _batch_rounds(
    store: Any, model: Any, pipeline: Any, rows: int, rounds: int, chunk: int
) -> list[tuple[float, float, float]]:
    from mlplatform.batch import score_file
    from mlplatform.store import BATCH_DONE, BATCH_INCOMING, BATCH_OUTPUT

    frame = synthetic_features(rows, seed=5, missing_rate=0.02)
    tag = f"bench-{uuid.uuid4().hex[:8]}"

    def drop(name: str, data: Any) -> str:
        return store.drop_batch_file(name, data.to_csv(index=False).encode())

    score_file(drop(f"{tag}-warmup.csv", frame.head(2_000)), model, store, chunk)
    results = []
    for i in range(rounds):
        start = time.perf_counter()
        pipeline.predict_proba(frame)
        pipeline.predict(frame)
        in_process = rows / (time.perf_counter() - start)
        key = drop(f"{tag}-{i}.csv", frame)
        start = time.perf_counter()
        score_file(key, model, store, chunk)
        csv_rate = rows / (time.perf_counter() - start)
        key = store.lake.write_parquet(f"{BATCH_INCOMING}{tag}-{i}.parquet", frame)
        start = time.perf_counter()
        score_file(key, model, store, chunk)
        results.append((in_process, csv_rate, rows / (time.perf_counter() - start)))
    for prefix in (f"{BATCH_OUTPUT}{tag}", f"{BATCH_DONE}{tag}"):
        for key in list(store.lake.list(prefix)):
            store.lake.delete(key)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=6, help="load duration per configuration")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds (ratios are per round)"
    )
    parser.add_argument(
        "--batch-rows", type=int, default=200_000, help="rows for the batch comparison"
    )
    parser.add_argument(
        "--batch-rounds", type=int, default=7,
        help="rounds of the batch comparison (~2 s each; a single in-process predict of "
        "200,000 rows varies 2x from run to run here, so it takes more rounds than the servers)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="the service's uvicorn workers")
    parser.add_argument(
        "--register-synthetic", action="store_true",
        help="no champion yet: register and promote a synthetic-data model first (dev only)",
    )  # fmt: skip
    parser.add_argument(
        "--synthetic-model", action="store_true",
        help="serve a synthetic logistic regression (ONNX) registered under a model name of its "
        f"own ({BENCH_MODEL_SUFFIX!r} appended), not the champion, which stays as it is: the "
        "request path's figures whatever family the champion is",
    )  # fmt: skip
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 1
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    s = get_settings()
    if args.synthetic_model:
        s = s.model_copy(
            update={"REGISTERED_MODEL_NAME": s.REGISTERED_MODEL_NAME + BENCH_MODEL_SUFFIX}
        )
    registry.configure(s)
    champion = registry.get_champion(s)
    if champion is None and (args.register_synthetic or args.synthetic_model):
        from sklearn.linear_model import LogisticRegression
        from synthetic_model import register_synthetic_model

        champion = register_synthetic_model(LogisticRegression(max_iter=500), s)
    if champion is None:
        print("no champion: run the `train` DAG (or pass --register-synthetic)", file=sys.stderr)
        return 1
    uri = registry.model_uri(s.REGISTERED_MODEL_NAME, version=champion.version)
    print(
        f"model {uri}; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; "
        f"{args.rounds} rounds of {args.seconds} s per configuration and server"
    )

    one = example_patient()
    batch = [
        {k: (int(v) if float(v).is_integer() else float(v)) for k, v in r.items()}
        for r in synthetic_features(BATCH_ROWS, seed=9)[list(FEATURES)].to_dict("records")
    ]
    bodies = {
        "mlflow": (
            json.dumps({"dataframe_records": mlflow_records([one], uri)}),
            json.dumps({"dataframe_records": mlflow_records(batch, uri)}),
        ),
        "service": (json.dumps(one), json.dumps({"rows": batch})),
    }
    env = {**os.environ, **export_env(s), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    mlflow_port, service_port, ceiling_port = free_port(), free_port(), free_port()
    configs = [(f"1 row, c={c}", c, 0) for c in SINGLE_ROW_CONCURRENCY]
    configs.append((f"{BATCH_ROWS} rows, c={BATCH_CONCURRENCY}", BATCH_CONCURRENCY, 1))
    targets = ("mlflow", "ceiling", "service")
    runs: dict[tuple[str, str], list[Result]] = {(c[0], t): [] for c in configs for t in targets}
    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        venv_bin = Path(sys.executable).parent
        # The baseline is MLflow's own server, which can only load the model by unpickling it.
        mlflow_env = {**env, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
        pids: dict[str, int] = {}
        pids["mlflow"] = stack.enter_context(
            server(
                [str(venv_bin / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local",
                 "-w", "1", "-h", "127.0.0.1", "-p", str(mlflow_port)],
                mlflow_env, f"http://127.0.0.1:{mlflow_port}/ping", tmp / "mlflow-serve.log",
            )
        )  # fmt: skip
        # The flags of fastapi/entrypoint.sh (uvicorn picks uvloop and httptools when present).
        pids["service"] = stack.enter_context(
            server(
                [str(venv_bin / "uvicorn"), "--factory", "mlplatform.serving.app:app_factory",
                 "--workers", str(args.workers), *UVICORN_FLAGS,
                 "--host", "127.0.0.1", "--port", str(service_port)],
                {**env, "FASTAPI_PORT": str(service_port)},
                f"http://127.0.0.1:{service_port}/ready", tmp / "service.log",
            )
        )  # fmt: skip
        pids["ceiling"] = stack.enter_context(
            server(
                [str(venv_bin / "uvicorn"), "ceiling_app:app", "--app-dir", str(HERE),
                 "--workers", "1", *UVICORN_FLAGS, "--host", "127.0.0.1",
                 "--port", str(ceiling_port)],
                env, f"http://127.0.0.1:{ceiling_port}/health", tmp / "ceiling.log",
            )
        )  # fmt: skip
        served = httpx.get(f"http://127.0.0.1:{service_port}/model").json()
        print(f"service backend: {served['backend']} ({served['backend_reason']})")
        urls = {
            "mlflow": f"http://127.0.0.1:{mlflow_port}/invocations",
            "ceiling": f"http://127.0.0.1:{ceiling_port}/predict",
            "service": f"http://127.0.0.1:{service_port}/predict",
        }
        bodies["ceiling"] = bodies["service"]

        def url(target: str, which: int) -> str:
            return urls[target] + ("/batch" if which and target != "mlflow" else "")

        for target in targets:  # warm-up, not recorded: first-request imports, JIT-free caches
            for which in (0, 1):
                wrk(url(target, which), bodies[target][which], 8, 2, tmp)
        in_process: list[tuple[float, float]] = []
        from mlplatform.inference.loading import load_champion

        pipeline = load_champion(s, fast=False).predictor.pipeline  # type: ignore[attr-defined]
        for _ in range(args.rounds):
            for label, concurrency, which in configs:
                for target in targets:
                    runs[(label, target)].append(
                        wrk(url(target, which), bodies[target][which], concurrency,
                            args.seconds, tmp, pids[target])
                    )  # fmt: skip
            in_process.append(in_process_rows_per_s(pipeline, batch))

    header = (
        f"{'configuration':16} {'server':8} {'req/s':>9} {'rows/s':>10} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'errors':>6} {'x mlflow':>9} {'/ceiling':>9} {'cpu us/req':>10}"
    )
    for i in range(args.rounds):
        print(f"\nround {i + 1}\n{header}")
        for label, _, which in configs:
            base = runs[(label, "mlflow")][i].req_s
            ceiling = runs[(label, "ceiling")][i].req_s
            for target in targets:
                r = runs[(label, target)][i]
                rows = r.req_s * (BATCH_ROWS if which else 1)
                print(f"{label:16} {target:8} {r.req_s:9.1f} {rows:10.0f} {r.p50_ms:8.2f} "
                      f"{r.p99_ms:8.2f} {r.errors:6d} {r.req_s / base:9.1f} "
                      f"{r.req_s / ceiling:9.2f} {r.cpu_us:10.0f}")  # fmt: skip
        sk, ox = in_process[i]
        print(f"in-process predict of the {BATCH_ROWS} rows: sklearn {sk:,.0f} rows/s, "
              f"ONNX {ox:,.0f} rows/s")  # fmt: skip
    print(
        f"\nmedian of {args.rounds} rounds (errors: total; x mlflow: median of the per-round "
        f"ratios, min-max in brackets; p99: median, worst round in brackets)"
    )
    print(f"{header} {'p99 worst':>10} {'ratio range':>13}")

    def share(label: str, target: str) -> list[float]:
        """Per round, `target`'s req/s over the ceiling app's."""
        pairs = zip(runs[(label, target)], runs[(label, "ceiling")], strict=True)
        return [r.req_s / c.req_s for r, c in pairs]

    for label, _, which in configs:
        for target in targets:
            rs = runs[(label, target)]
            ratios = [r.req_s / m.req_s for r, m in zip(rs, runs[(label, "mlflow")], strict=True)]
            shares = share(label, target)
            req_s = median([r.req_s for r in rs])
            rows = req_s * (BATCH_ROWS if which else 1)
            print(
                f"{label:16} {target:8} {req_s:9.1f} {rows:10.0f} "
                f"{median([r.p50_ms for r in rs]):8.2f} {median([r.p99_ms for r in rs]):8.2f} "
                f"{sum(r.errors for r in rs):6d} {median(ratios):9.1f} {median(shares):9.2f} "
                f"{median([r.cpu_us for r in rs]):10.0f} {max(r.p99_ms for r in rs):10.2f} "
                f"{f'{min(ratios):.1f}-{max(ratios):.1f}':>13}"
            )

    batch_runs = batch_logic_vs_in_process(s, args.batch_rows, args.batch_rounds)
    print(
        f"\nbatch job logic vs in-process predict ({args.batch_rows:,} rows, chunks of "
        f"{s.BATCH_CHUNK_ROWS:,})"
    )
    for i, (baseline, csv_rate, parquet_rate) in enumerate(batch_runs, 1):
        print(
            f"round {i}: in-process {baseline:,.0f} rows/s; batch from CSV {csv_rate:,.0f} "
            f"rows/s (ratio {csv_rate / baseline:.2f}); from Parquet {parquet_rate:,.0f} rows/s "
            f"(ratio {parquet_rate / baseline:.2f})"
        )
    for name, column in (("CSV", 1), ("Parquet", 2)):
        ratios = [r[column] / r[0] for r in batch_runs]
        print(
            f"batch from {name}: median ratio {median(ratios):.2f} "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
        )

    def spread(values: list[float], fmt: str = ".2f") -> str:
        return f"{median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"

    def cpu_share(label: str) -> list[float]:
        """Per round, the ceiling's CPU time per request over the service's: the share of
        the server's capacity the service keeps, measured by what each request costs."""
        pairs = zip(runs[(label, "service")], runs[(label, "ceiling")], strict=True)
        return [c.cpu_us / r.cpu_us for r, c in pairs if r.cpu_us]

    def p99(label: str) -> list[float]:
        return [r.p99_ms for r in runs[(label, "service")]]

    batch_label = f"{BATCH_ROWS} rows, c={BATCH_CONCURRENCY}"
    served_rows = [r.req_s * BATCH_ROWS for r in runs[(batch_label, "service")]]
    goals = [
        ("/predict req/s / bare-ASGI ceiling (1 row, c=8)", ">= 0.50",
         spread(share("1 row, c=8", "service"))),
        ("the same by CPU time per request (ceiling / service)", "(info)",
         spread(cpu_share("1 row, c=8"))),
        ("p99 ms at c=8", "<= 10", spread(p99("1 row, c=8"), ".1f")),
        ("p99 ms at c=32", "<= 40", spread(p99("1 row, c=32"), ".1f")),
        (f"{BATCH_ROWS}-row batches rows/s / in-process sklearn predict", ">= 0.5",
         spread([r / sk for r, (sk, _) in zip(served_rows, in_process, strict=True)])),
        (f"{BATCH_ROWS}-row batches rows/s / in-process ONNX predict", "(info)",
         spread([r / ox for r, (_, ox) in zip(served_rows, in_process, strict=True)])),
        ("batch DAG logic from CSV / in-process predict", ">= 0.8",
         spread([r[1] / r[0] for r in batch_runs])),
        ("batch DAG logic from Parquet / in-process predict", "(info)",
         spread([r[2] / r[0] for r in batch_runs])),
    ]  # fmt: skip
    print(f"\ngoals (issue 13): median over rounds (min-max); service workers: {args.workers}; "
          f"load average now {os.getloadavg()[0]:.1f}")  # fmt: skip
    for what, goal, value in goals:
        print(f"  {what:55} {goal:>8}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
