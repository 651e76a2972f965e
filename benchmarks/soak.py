"""Soak: the prediction service under steady load for a long time, with its prediction log on.

    uv run python benchmarks/soak.py --minutes 10     # needs `make local`, a champion and wrk

wrk keeps `--concurrency` (8) connections of one-row `POST /predict` busy for `--minutes`, in
slices of `--slice-seconds` (each slice reports its own req/s, p50, p99 and errors), while the
service's RSS (/proc/<pid>/status) and its prediction-log backlog (/metrics
`prediction_log_buffered`, `prediction_log_dropped`) are sampled every second. After the load it
waits for the backlog to drain and counts the rows the log wrote for the run. It prints a table
and passes (exit 0) only when:

- no request failed (wrk's connect, read, write, timeout and non-2xx counts);
- RSS grew less than `--max-rss-growth` (10%) from the end of the warm-up to the run's peak;
- the backlog stayed bounded (never more than 3 flush intervals of traffic, nothing dropped)
  and drained after the load;
- every prediction served was logged: the log's rows for the run's window equal the service's
  own prediction counter over the run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The stack probes are shared with the fault tests; `wrk` is the serving benchmark's.
sys.path.insert(0, str(ROOT / "tests"))

from service_probe import counter, metrics, service_pid, status_mb  # noqa: E402
from serving_bench import Result, wrk  # noqa: E402

from mlplatform.commands.serving import wait_ready  # noqa: E402
from mlplatform.lake import Lake  # noqa: E402
from mlplatform.serving.schemas import example_patient  # noqa: E402
from mlplatform.settings import Settings, get_settings  # noqa: E402
from mlplatform.store import PREDICTION_LOG, DataStore  # noqa: E402


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the load started
    rss_mb: float
    buffered: float
    dropped: float


class Sampler(threading.Thread):
    """RSS and log backlog every `every` seconds until stopped."""

    def __init__(self, settings: Settings, pid: int, started: float, every: float = 1.0) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.settings, self.pid, self.started, self.every = settings, pid, started, every
        self.samples: list[Sample] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            values = metrics(self.settings)
            self.samples.append(
                Sample(
                    time.monotonic() - self.started,
                    status_mb(self.pid),
                    values["prediction_log_buffered"],
                    values["prediction_log_dropped"],
                )
            )


def logged_rows(settings: Settings, since: datetime, until: datetime) -> int:
    """Rows of the prediction log whose timestamp falls in [since, until]."""
    log = DataStore(Lake(settings)).read_dated(PREDICTION_LOG, since, until)
    if not len(log):
        return 0
    stamps = log["timestamp"]
    return int(((stamps >= since) & (stamps <= until)).sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10, help="load duration (default 10)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--slice-seconds", type=int, default=60, help="one table row per slice")
    parser.add_argument(
        "--warmup-seconds", type=float, default=60, help="RSS growth is measured after this"
    )
    parser.add_argument("--max-rss-growth", type=float, default=0.10)
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 1
    s = get_settings()
    wait_ready(s)
    pid = service_pid(s)
    url = f"{s.fastapi_url}/predict"
    body = json.dumps(example_patient())
    total = args.minutes * 60
    print(
        f"soak: {url}, c={args.concurrency}, {total:.0f} s in slices of {args.slice_seconds} s, "
        f"warm-up {args.warmup_seconds:.0f} s; service pid {pid}, RSS {status_mb(pid):.0f} MB; "
        f"log flush every {s.PREDICTION_LOG_FLUSH_SECONDS:g} s; load average "
        f"{os.getloadavg()[0]:.1f}",
        flush=True,
    )

    before = metrics(s)
    since = datetime.now(UTC)
    started = time.monotonic()
    sampler = Sampler(s, pid, started)
    sampler.start()
    slices: list[tuple[float, float, Result]] = []  # (start, seconds, result)
    with tempfile.TemporaryDirectory() as tmp:
        while (done := time.monotonic() - started) < total - 0.5:
            seconds = max(1, round(min(args.slice_seconds, total - done)))
            result = wrk(url, body, args.concurrency, seconds, Path(tmp))
            slices.append((done, seconds, result))
            print(
                f"  {done:6.0f} s: {result.req_s:7.0f} req/s, p99 {result.p99_ms:6.1f} ms, "
                f"errors {result.errors}, RSS {status_mb(pid):.0f} MB",
                flush=True,
            )
    load_seconds = time.monotonic() - started
    until = datetime.now(UTC)
    sampler.stopping.set()
    sampler.join()
    after = metrics(s)
    served = int(counter(after, "predictions_total") - counter(before, "predictions_total"))

    # Drained: the backlog is empty and the log holds every row. (The gauge alone is not
    # enough: it leaves out the rows of a flush in flight.)
    deadline = time.monotonic() + s.PREDICTION_LOG_FLUSH_SECONDS + 3 * s.S3_TIMEOUT_SECONDS + 30
    while True:
        backlog = metrics(s)["prediction_log_buffered"]
        logged = logged_rows(s, since - timedelta(seconds=1), until + timedelta(seconds=1))
        drained = backlog == 0 and logged >= served
        if drained or time.monotonic() > deadline:
            break
        time.sleep(2)

    samples = sampler.samples
    warm = [x for x in samples if x.at >= min(args.warmup_seconds, load_seconds / 2)]
    baseline = warm[0].rss_mb if warm else samples[0].rss_mb
    peak = max(x.rss_mb for x in warm) if warm else baseline
    growth = peak / baseline - 1
    rate = served / load_seconds
    max_backlog = max(x.buffered for x in samples)
    backlog_bound = 3 * s.PREDICTION_LOG_FLUSH_SECONDS * max(rate, 1.0)
    dropped = after["prediction_log_dropped"] - before["prediction_log_dropped"]
    errors = sum(r.errors for _, _, r in slices)

    print(
        f"\n{'from s':>7} {'secs':>5} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'RSS MB':>7} {'backlog max':>11}"
    )
    for start, seconds, r in slices:
        inside = [x for x in samples if start <= x.at < start + seconds] or samples[-1:]
        print(
            f"{start:7.0f} {seconds:5d} {r.req_s:8.0f} {r.p50_ms:7.2f} {r.p99_ms:7.2f} "
            f"{r.errors:6d} {inside[-1].rss_mb:7.0f} {max(x.buffered for x in inside):11.0f}"
        )
    p99s = [r.p99_ms for _, _, r in slices]
    checks = [
        (f"errors: {errors} of {served:,} predictions", errors == 0),
        (
            f"RSS: {baseline:.0f} MB after warm-up, peak {peak:.0f} MB, growth {growth:+.1%} "
            f"(limit {args.max_rss_growth:.0%})",
            growth < args.max_rss_growth,
        ),
        (
            f"log backlog: max {max_backlog:,.0f} rows (bound {backlog_bound:,.0f} = 3 flushes "
            f"at {rate:,.0f}/s), dropped {dropped:.0f}, drained after the load: {drained}",
            max_backlog <= backlog_bound and dropped == 0 and drained,
        ),
        # wrk stops counting with up to `concurrency` requests in flight; the service still
        # answers and logs those, so up to that many more rows than counted are expected.
        (
            f"logged rows: {logged:,} for {served:,} predictions served "
            f"(+ up to {args.concurrency} in flight when the load stopped)",
            served <= logged <= served + args.concurrency,
        ),
    ]
    print(
        f"\nsummary: {load_seconds:.0f} s at c={args.concurrency}, {served:,} predictions, "
        f"{rate:,.0f} req/s; p99 per slice: median {statistics.median(p99s):.1f} ms, "
        f"worst {max(p99s):.1f} ms"
    )
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
