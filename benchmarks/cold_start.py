"""Cold start of the local stack: start by dependency (today) against start by stages (before).

    uv run python benchmarks/cold_start.py [--rounds N] [--warm]

Each round starts two fresh stacks, one after the other, each on free ports in its own
temporary folder: the baseline with the old three stages (storage; then migrations,
MLflow and the API; then Airflow, each stage waiting for the whole previous one) and
today's order, where each program starts as soon as what it needs is healthy. The machine
is shared, so the two take turns and a ratio is only taken within a round. It prints each
phase's start and ready times, then the ratios. With --warm it also restarts each stack
once (data kept): today's start then skips `airflow db migrate` when the schema is current.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from mlplatform.localstack import LocalStack, free_ports
from mlplatform.settings import Settings, get_settings

STAGES = [
    ("postgres", "s3", "prometheus"),
    ("airflow-init", "mlflow", "fastapi"),
    ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"),
]


def staged(stack: LocalStack) -> None:
    """The baseline: every program waits for the whole previous stage, and migrations always run."""
    present = {p.name for p in stack.programs}
    previous: dict[str, tuple[str, ...]] = {}
    for before, stage in zip([(), *STAGES], STAGES, strict=False):
        for name in stage:
            previous[name] = tuple(n for n in before if n in present)
    stack.programs = [
        dataclasses.replace(p, after=previous[p.name], done_already=None) for p in stack.programs
    ]


def one_start(baseline: bool, warm: bool) -> tuple[float, float | None, str]:
    folder = Path(tempfile.mkdtemp(prefix="mlplatform-coldstart-"))
    os.environ.update({k: str(v) for k, v in free_ports().items()})
    os.environ.update({"STACK_DIR": str(folder), "PLATFORM_ENV": "test"})
    get_settings.cache_clear()
    settings: Settings = get_settings()
    stack = LocalStack(settings)
    if baseline:
        staged(stack)
    restart = None
    try:
        began = time.monotonic()
        stack.up(quiet=True)
        cold = time.monotonic() - began
        report = stack.phase_report()
        if warm:
            stack.down()
            again = LocalStack(settings)
            if baseline:
                staged(again)
            began = time.monotonic()
            again.up(quiet=True)
            restart = time.monotonic() - began
            report += "\n  restart:\n" + again.phase_report()
            stack = again
    finally:
        stack.down()
        shutil.rmtree(folder, ignore_errors=True)
    return cold, restart, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--warm", action="store_true", help="also time a restart of each stack")
    args = parser.parse_args()
    cold_ratios, warm_ratios = [], []
    for round_no in range(1, args.rounds + 1):
        results = {}
        for name, baseline in (("stages (baseline)", True), ("dependencies", False)):
            results[name] = one_start(baseline, args.warm)
            cold, restart, report = results[name]
            warm_text = f", restart {restart:.0f} s" if restart is not None else ""
            print(f"round {round_no} {name}: all healthy after {cold:.0f} s{warm_text}")
            print(report)
        (base_cold, base_warm, _), (new_cold, new_warm, _) = results.values()
        cold_ratios.append(new_cold / base_cold)
        if base_warm and new_warm:
            warm_ratios.append(new_warm / base_warm)
    print(f"cold start, dependencies / stages: median ratio {statistics.median(cold_ratios):.2f}")
    if warm_ratios:
        print(f"restart, dependencies / stages: median ratio {statistics.median(warm_ratios):.2f}")


if __name__ == "__main__":
    main()
