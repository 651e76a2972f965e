"""`mlplatform demo`: start the local stack if needed, run the platform's whole loop.

Each feature adds its steps to DEMO_STEPS ("module:function", called with Settings),
so `make demo` always shows everything the platform can do.
"""

from __future__ import annotations

import argparse
from importlib import import_module
from typing import Any

from mlplatform.settings import get_settings

DEMO_STEPS: list[str] = [
    "mlplatform.commands.demo:smoke_step",
    # Before serving: it needs the champion this step trains.
    "mlplatform.commands.pipelines:demo_step",
    "mlplatform.commands.pipelines:retrain_demo_step",
    "mlplatform.commands.serving:serving_step",
]


def smoke_step(settings: Any) -> None:
    from mlplatform.airflow_client import AirflowClient

    AirflowClient(settings).run("platform_smoke", timeout=300)


def cmd_demo(args: argparse.Namespace) -> int:
    from mlplatform.commands.core import print_urls
    from mlplatform.errors import PlatformError
    from mlplatform.localstack import LocalStack

    settings = get_settings()
    LocalStack(settings).up()
    for step in DEMO_STEPS:
        print(f"\n== {step.split(':')[1].replace('_', ' ')}")
        try:
            module, func = step.split(":")
            getattr(import_module(module), func)(settings)
        except Exception as err:
            raise PlatformError(f"demo step {step} failed: {err}") from err
    print("\nThe stack keeps running (`make local-down` stops it). Where to look:")
    print_urls()
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="run the platform's whole loop on the local stack")
    p.set_defaults(func=cmd_demo)
