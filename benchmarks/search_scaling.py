"""Scale-out of the hyperparameter search: 40 trials with 1 worker and with 2 workers sharing
one Optuna study in PostgreSQL (RDBStorage), as the train DAG runs them with SEARCH_WORKERS.

    uv run python benchmarks/search_scaling.py --fresh-stack   # a throwaway local stack
    uv run python benchmarks/search_scaling.py          # against the running `make local`

Each worker is its own process (spawned: it shares nothing with the others but the
database), running `mlplatform.search.optimize_share` on the Cleveland training split, as a
mapped `search` task does. The baseline is the in-process study of today's K = 1 path
(`training.search`, memory storage), in a process of its own too. Within a round the three
runs take turns on the same machine and the ratios are taken against the same round's
1-worker run. It prints wall times, trials per worker and the mean trial-seconds per worker
and CPU-seconds (the capacity plan's unit: trials/hour per training worker = 3600 /
trial-seconds; the CPU figure is what a worker with a core of its own would see).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from mlplatform.build import RawDelivery, build
from mlplatform.dbinit import ensure_database
from mlplatform.ingest import seed_file
from mlplatform.search import WORKER, completed, optimize_share, split_trials, storage
from mlplatform.settings import Settings, get_settings
from mlplatform.spec import SPEC
from mlplatform.training import candidate_of, search

SPAWN = multiprocessing.get_context("spawn")


def training_split(settings: Settings) -> pd.DataFrame:
    raw = seed_file("cleveland", settings).read_bytes()
    built = build([RawDelivery("cleveland", "landing/cleveland/x", "-", raw)], 42, 0.2)
    return built.splits["train"][[*SPEC.feature_names, SPEC.target]]


def in_process(train: pd.DataFrame, trials: int, s: Settings) -> float:
    began = time.monotonic()
    with ProcessPoolExecutor(1, mp_context=SPAWN) as pool:
        pool.submit(search, train, trials, s.RANDOM_SEED, s.CV_FOLDS).result()
    return time.monotonic() - began


def timed_share(*args: Any) -> tuple[int, float]:
    """`optimize_share` in a worker process, with the CPU seconds it used (contention-free,
    unlike its wall time on a shared machine)."""
    began = time.process_time()
    done = optimize_share(*args)
    return done, time.process_time() - began


def shared(
    train: pd.DataFrame, trials: int, workers: int, s: Settings, replay: list[Any] | None = None
) -> dict[str, Any]:
    """Wall time of `workers` processes sharing a fresh study, and each one's trial-seconds.
    With `replay` (trial params), the study first evaluates exactly those configurations."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    url = s.pg_url(s.OPTUNA_PG_DATABASE)
    study = optuna.create_study(storage=storage(s), study_name=name, direction="maximize")
    for params in replay or []:
        study.enqueue_trial(params)
    began = time.monotonic()
    with ProcessPoolExecutor(workers, mp_context=SPAWN) as pool:
        runs = [
            pool.submit(timed_share, name, url, train, w, n, s.RANDOM_SEED, s.CV_FOLDS)
            for w, n in enumerate(split_trials(trials, workers))
        ]
        done, cpu = zip(*(r.result() for r in runs), strict=True)
    wall = time.monotonic() - began
    finished = completed(optuna.load_study(study_name=name, storage=url).trials)
    optuna.delete_study(study_name=name, storage=url)
    assert len(finished) == trials == sum(done), (len(finished), done)
    seconds: dict[int, list[float]] = {}
    families = Counter(candidate_of(t).family for t in finished)
    for t in finished:
        assert t.datetime_start is not None and t.datetime_complete is not None
        span = (t.datetime_complete - t.datetime_start).total_seconds()
        seconds.setdefault(t.user_attrs[WORKER], []).append(span)
    return {
        "params": [t.params for t in sorted(finished, key=lambda t: t.number)],
        "wall": wall,
        "trials": [len(seconds[w]) for w in sorted(seconds)],
        "trial_seconds": [statistics.mean(seconds[w]) for w in sorted(seconds)],
        "cpu_per_trial": [c / n for c, n in zip(cpu, done, strict=True)],
        "families": dict(sorted(families.items())),
    }


@contextmanager
def fresh_stack() -> Iterator[Settings]:
    """A throwaway local stack on free ports in a temporary folder, stopped at the end."""
    from mlplatform.localstack import LocalStack, free_ports

    folder = Path(tempfile.mkdtemp(prefix="mlplatform-search-bench-"))
    os.environ.update({k: str(v) for k, v in free_ports().items()})
    os.environ.update({"STACK_DIR": str(folder), "PLATFORM_ENV": "test"})
    get_settings.cache_clear()
    stack = LocalStack(get_settings())
    try:
        stack.up(quiet=True)
        yield get_settings()
    finally:
        stack.down()
        shutil.rmtree(folder, ignore_errors=True)


def bench(s: Settings, trials: int, rounds: int) -> None:
    ensure_database(s, s.OPTUNA_PG_DATABASE)
    train = training_split(s)
    print(
        f"{trials} trials, {s.CV_FOLDS}-fold CV on {len(train)} training rows, {os.cpu_count()} cores"
    )
    ratios = []
    for r in range(1, rounds + 1):
        baseline = in_process(train, trials, s)
        one = shared(train, trials, 1, s)
        two = shared(train, trials, 2, s)
        # The same 40 configurations as the 1-worker run: the pure scale-out, without the
        # parallel TPE choosing a cheaper or dearer mix of models.
        same = shared(train, trials, 2, s, replay=one["params"])
        ratios.append(one["wall"] / same["wall"])
        load = os.getloadavg()[0]
        print(f"round {r} (load {load:.1f}):")
        print(f"  in-process, 1 worker (K=1 today)   wall {baseline:6.1f} s")
        runs = (("1 worker", one), ("2 workers", two), ("2, replay", same))
        for label, run in runs:
            per = ", ".join(
                f"w{w}: {n} trials, {sec:.2f} s/trial wall, {cpu:.2f} CPU s/trial"
                for w, (n, sec, cpu) in enumerate(
                    zip(run["trials"], run["trial_seconds"], run["cpu_per_trial"], strict=True)
                )
            )
            print(f"  PostgreSQL study, {label:9s}          wall {run['wall']:6.1f} s  ({per})")
            print(f"    families tried: {run['families']}")
        print(f"  speed-up 2 workers vs 1, same configurations: {ratios[-1]:.2f}x")
        print(f"  2 workers with their own search vs 1: {one['wall'] / two['wall']:.2f}x")
    print(
        f"median speed-up (same configurations), {rounds} round(s): {statistics.median(ratios):.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--fresh-stack", action="store_true", help="start a throwaway local stack for its PG"
    )
    args = parser.parse_args()
    # One BLAS/OpenMP thread per worker process (spawned children read it at import): with
    # the default, each of two workers starts a thread per core and they fight over the cores.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if args.fresh_stack:
        with fresh_stack() as s:
            bench(s, args.trials, args.rounds)
    else:
        bench(get_settings(), args.trials, args.rounds)


if __name__ == "__main__":
    main()
