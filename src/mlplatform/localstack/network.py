"""The TCP ports of the local stack: which ones it uses, whether they are free, fresh sets of them."""

from __future__ import annotations

import random
import socket

from mlplatform.settings import Settings

# SeaweedFS `weed mini` needs this many ports upward from SEAWEEDFS_PORT_BASE.
SEAWEEDFS_PORTS = 7
# The S3 console's gRPC port sits at its HTTP port + this (weed ignores a setting for it).
CONSOLE_GRPC_OFFSET = 10000


def ports(s: Settings, prometheus: bool = False) -> dict[str, int]:
    """Every TCP port the stack listens on, by the variable that sets it."""
    found = {
        "PG_PORT": s.PG_PORT,
        "MINIO_PORT": s.MINIO_PORT,
        "MINIO_PORT_UI": s.MINIO_PORT_UI,
        f"MINIO_PORT_UI + {CONSOLE_GRPC_OFFSET} (S3 console gRPC)": s.MINIO_PORT_UI
        + CONSOLE_GRPC_OFFSET,
        "MLFLOW_PORT": s.MLFLOW_PORT,
        "AIRFLOW_PORT": s.AIRFLOW_PORT,
        "FASTAPI_PORT": s.FASTAPI_PORT,
    }
    for offset in range(SEAWEEDFS_PORTS):
        found[f"SEAWEEDFS_PORT_BASE + {offset}"] = s.SEAWEEDFS_PORT_BASE + offset
    if prometheus:
        found["PROMETHEUS_PORT"] = s.PROMETHEUS_PORT
    if s.celery:
        found["CELERY_BROKER_PORT"] = s.CELERY_BROKER_PORT
    return found


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_ports(
    low: int = 20000, high: int = 45000, rng: random.Random | None = None
) -> dict[str, int]:
    """A free port for every port variable, e.g. to run a second stack beside the first.

    The ports are distinct, including the ranges and offsets the services derive from them.
    """
    rng = rng or random.Random()
    taken: set[int] = set()

    def pick(span: int = 1, extra: tuple[int, ...] = ()) -> int:
        while True:
            base = rng.randrange(low, high)
            wanted = [base + i for i in range(span)] + [base + e for e in extra]
            if not taken.intersection(wanted) and not any(map(port_in_use, wanted)):
                taken.update(wanted)
                return base

    return {
        "PG_PORT": pick(),
        "MINIO_PORT": pick(),
        "MINIO_PORT_UI": pick(extra=(CONSOLE_GRPC_OFFSET,)),
        "SEAWEEDFS_PORT_BASE": pick(span=SEAWEEDFS_PORTS),
        "MLFLOW_PORT": pick(),
        "AIRFLOW_PORT": pick(),
        "FASTAPI_PORT": pick(),
        "PROMETHEUS_PORT": pick(),
        "CELERY_BROKER_PORT": pick(),
    }
