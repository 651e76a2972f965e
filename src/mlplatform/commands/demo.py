"""`mlplatform demo`: start the local stack if needed, run the platform's whole loop.

Each feature adds its step to DEMO_STEPS (a function taking Settings), so `make demo`
always shows everything the platform can do.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from mlplatform.commands import monitoring, pipelines, serving
from mlplatform.settings import Settings, get_settings


def smoke_step(settings: Settings) -> None:
    from mlplatform.airflow_client import AirflowClient

    AirflowClient(settings).run("platform_smoke", timeout=300)


DEMO_STEPS: list[Callable[[Settings], None]] = [
    smoke_step,
    # Before serving: it needs the champion this step trains.
    pipelines.demo_step,
    pipelines.retrain_demo_step,
    serving.serving_step,
    # Last: it needs the service's traffic, and it ends in a retraining.
    monitoring.monitoring_step,
]


def cmd_demo(args: argparse.Namespace) -> int:
    from mlplatform.commands.core import print_urls
    from mlplatform.errors import PlatformError
    from mlplatform.localstack import LocalStack

    settings = get_settings()
    LocalStack(settings).up()
    for step in DEMO_STEPS:
        name = step.__name__.replace("_", " ")
        print(f"\n== {name}")
        try:
            step(settings)
        except Exception as err:
            raise PlatformError(f"demo step {name} failed: {err}") from err
    print("\nThe stack keeps running (`make local-down` stops it). Where to look:")
    print_urls()
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="run the platform's whole loop on the local stack")
    p.set_defaults(func=cmd_demo)
