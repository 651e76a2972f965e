"""The environment every program of the stack gets, derived from the settings.

Its own light module: every entrypoint runs `mlplatform env` at start, on the stack's 2 cores.
"""

from __future__ import annotations

from mlplatform.settings import Settings


def export_env(s: Settings) -> dict[str, str]:
    """Every setting plus the derived service environment, as strings."""
    env: dict[str, str] = {}
    for name in type(s).model_fields:
        field_info = type(s).model_fields[name]
        env[field_info.alias or name] = str(getattr(s, name))
    env.update(s.service_env())
    return env


# A Celery worker of the local stack runs with its node name here, and Airflow's
# [core] hostname_callable set to `worker_hostname`: its task instances then name the worker
# that ran them (several share one machine, whose name alone would not tell them apart).
WORKER_NAME_VAR = "AIRFLOW_WORKER_NAME"
HOSTNAME_CALLABLE = f"{__name__}.worker_hostname"


def worker_hostname() -> str:
    """The hostname Airflow records for a task: this worker's Celery node name, else the FQDN."""
    import os
    import socket

    return os.environ.get(WORKER_NAME_VAR) or socket.getfqdn()
