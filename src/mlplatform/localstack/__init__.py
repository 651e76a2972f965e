"""The local stack: every service as a real process on 127.0.0.1, under supervisord.

One job per module:
- `services`: what each program runs, what it waits for, its health check;
- `network`: the ports the stack uses, free-port allocation;
- `prereqs`: binaries (PostgreSQL: system or the pgserver wheel), users, the doctor's checks;
- `prometheus`: the optional Prometheus's local config, made from the shared one;
- `environment`: the environment every program gets;
- `files`: where a stack keeps its files; supervisord's config and the folders' owners;
- `supervisor`: `LocalStack`, start/stop/status through supervisord;
- `procs`: /proc utilities (the stack's processes, their memory).

Names load on first use: `mlplatform env`, which every entrypoint runs, then imports only
`environment`, not httpx and rich.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlplatform.localstack.environment import export_env
    from mlplatform.localstack.network import free_ports, port_in_use, ports
    from mlplatform.localstack.prereqs import (
        check_prerequisites,
        diagnose,
        find_postgres,
        postgres_binaries,
    )
    from mlplatform.localstack.procs import STACK_MARKER, process_tree_pss_mb, stack_processes
    from mlplatform.localstack.services import Program, after_start, programs
    from mlplatform.localstack.supervisor import LocalStack, stack_programs

_HOME = {
    "export_env": "environment",
    "free_ports": "network",
    "port_in_use": "network",
    "ports": "network",
    "check_prerequisites": "prereqs",
    "diagnose": "prereqs",
    "find_postgres": "prereqs",
    "postgres_binaries": "prereqs",
    "STACK_MARKER": "procs",
    "process_tree_pss_mb": "procs",
    "stack_processes": "procs",
    "Program": "services",
    "after_start": "services",
    "programs": "services",
    "LocalStack": "supervisor",
    "stack_programs": "supervisor",
}
__all__ = [  # the same names as _HOME: a unit test keeps them in step
    "STACK_MARKER",
    "LocalStack",
    "Program",
    "after_start",
    "check_prerequisites",
    "diagnose",
    "export_env",
    "find_postgres",
    "free_ports",
    "port_in_use",
    "ports",
    "postgres_binaries",
    "process_tree_pss_mb",
    "programs",
    "stack_processes",
    "stack_programs",
]


def __getattr__(name: str) -> object:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
