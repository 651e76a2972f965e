"""The programs of the local stack: what each runs, what it waits for, how its health is checked.

Compose reuses the health checks (`programs(s)` by name), so they take only Settings.
"""

from __future__ import annotations

import importlib.util
import re
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import httpx

from mlplatform.localstack.environment import HOSTNAME_CALLABLE, WORKER_NAME_VAR
from mlplatform.settings import REPO_ROOT, Settings

# The CeleryExecutor's programs in the local stack: the broker and airflow-worker-1..N.
BROKER = "celery-broker"
WORKER_PREFIX = "airflow-worker-"


@dataclass(frozen=True)
class Program:
    name: str
    command: str
    # Programs that must be healthy (or, for a one-shot, done) before this one starts.
    after: tuple[str, ...] = ()
    health: Callable[[Settings], bool] | None = None
    oneshot: bool = False
    # A one-shot whose work is already done is not run again (e.g. a current schema).
    done_already: Callable[[Settings], bool] | None = None
    as_postgres_user: bool = False
    stop_signal: str = "TERM"
    env: dict[str, str] = field(default_factory=dict)


@cache
def _http() -> httpx.Client:
    # One client for every poll: a new one builds an SSL context, about 25 ms of CPU each,
    # which the waiting loop would take from the services starting on the same 2 cores.
    return httpx.Client(timeout=3)


def http_ok(url: str) -> bool:
    try:
        return _http().get(url).status_code == 200
    except httpx.HTTPError:
        return False


def _pg_connect(s: Settings, database: str) -> object:
    from mlplatform.dbinit import connect

    return connect(s, database, timeout=2)


def postgres_healthy(s: Settings) -> bool:
    import psycopg2

    try:
        _pg_connect(s, s.PG_DATABASE).close()  # type: ignore[attr-defined]
    except psycopg2.OperationalError:
        return False
    return True


def s3_healthy(s: Settings) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    from mlplatform.lake import s3_client

    try:
        s3_client(s).list_buckets()
    except (BotoCoreError, ClientError):
        return False
    return True


def _airflow_component_healthy(component: str) -> Callable[[Settings], bool]:
    def check(s: Settings) -> bool:
        try:
            body = _http().get(f"{s.airflow_url}/api/v2/monitor/health").json()
        except (httpx.HTTPError, ValueError):
            return False
        if component == "api_server":
            return body.get("metadatabase", {}).get("status") == "healthy"
        return body.get(component, {}).get("status") == "healthy"

    return check


def broker_healthy(s: Settings) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(
            s.celery_broker_url, socket_timeout=2, socket_connect_timeout=2
        )
        with client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


# The health checks run in threads: celery's lazy module attributes are not safe to import
# concurrently (`cannot import name 'Celery'`), nor is one app's connection to share.
_CELERY_LOCK = threading.Lock()


@cache
def _celery_control(broker_url: str) -> object:
    from celery import Celery

    # Only for control messages (ping): the same broker and pidbox exchange as Airflow's app,
    # without importing Airflow.
    app = Celery(broker=broker_url, set_as_current=False)
    app.conf.broker_connection_timeout = 2
    return app.control


def celery_ping(s: Settings, nodes: Iterable[str], timeout: float = 1.0) -> set[str]:
    """The Celery node names among `nodes` that answer a ping through the broker."""
    from kombu.exceptions import OperationalError

    if not broker_healthy(s):  # fast; Celery would retry its connection for seconds first
        return set()
    try:
        with _CELERY_LOCK:
            replies = _celery_control(s.celery_broker_url).ping(  # type: ignore[attr-defined]
                destination=list(nodes), timeout=timeout
            )
    except (OperationalError, OSError):
        return set()
    return {name for reply in replies or [] for name in reply}


def worker_nodename(index: int) -> str:
    """The Celery node name of the local stack's worker `index` (1-based): name@host."""
    return f"{WORKER_PREFIX}{index}@{socket.gethostname()}"


def _celery_worker_healthy(nodename: str) -> Callable[[Settings], bool]:
    return lambda s: nodename in celery_ping(s, [nodename])


_REVISION = re.compile(r"^(down_revision|revision)\b[^=]*=(.*)$", re.M)


def migration_heads(versions_dir: Path) -> set[str]:
    """The head revisions of an alembic versions folder, read as text (no Airflow import)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in versions_dir.glob("*.py"):
        for kind, value in _REVISION.findall(script.read_text()):
            ids = set(re.findall(r"[\"']([0-9a-f]+)[\"']", value))
            (parents if kind == "down_revision" else revisions).update(ids)
    return revisions - parents


def airflow_schema_current(s: Settings) -> bool:
    """True when Airflow's database is at the installed Airflow's migration head.

    `airflow db migrate` then has nothing to do; skipping it saves about 10 s per start.
    """
    import psycopg2

    spec = importlib.util.find_spec("airflow")
    if spec is None or not spec.submodule_search_locations:
        return False
    heads = migration_heads(
        Path(next(iter(spec.submodule_search_locations))) / "migrations" / "versions"
    )
    try:
        conn = _pg_connect(s, s.PG_DATABASE)
    except psycopg2.OperationalError:
        return False
    try:
        with conn.cursor() as cur:  # type: ignore[attr-defined]
            cur.execute("SELECT version_num FROM alembic_version")
            current = {row[0] for row in cur.fetchall()}
    except psycopg2.Error:
        return False  # a fresh database: no alembic_version table yet
    finally:
        conn.close()  # type: ignore[attr-defined]
    return bool(heads) and current == heads


def mlflow_auth_config(s: Settings) -> Path | None:
    """Where production's MLflow basic-auth config goes (compose always runs the auth app;
    locally, dev and test skip it: each authenticated request costs a password hash)."""
    return s.STACK_DIR / "mlflow" / "basic_auth.ini" if s.PLATFORM_ENV == "production" else None


def programs(s: Settings) -> list[Program]:
    """The services compose runs too, each through its service folder's entrypoint."""
    sh = f"bash {REPO_ROOT}"
    airflow = f"{sh}/airflow/entrypoint.sh"
    migrated = ("airflow-init",)
    # With Celery the scheduler sends, and the workers take, tasks through the broker.
    brokered = (*migrated, BROKER) if s.celery else migrated
    workers = [
        Program(
            f"{WORKER_PREFIX}{i}",
            f"{airflow} worker",
            after=brokered,
            health=_celery_worker_healthy(worker_nodename(i)),
            env={
                WORKER_NAME_VAR: worker_nodename(i),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
            },
        )
        for i in range(1, s.AIRFLOW_WORKERS + 1)
        if s.celery
    ]
    return [
        Program(
            "postgres",
            f"{sh}/postgres/entrypoint.sh",
            health=postgres_healthy,
            as_postgres_user=True,
            stop_signal="INT",
            env={"PGDATA": str(s.STACK_DIR / "postgres" / "data")},
        ),
        Program(
            "s3",
            f"{sh}/minio/entrypoint-seaweedfs.sh",
            health=s3_healthy,
            env={"S3_DATA_DIR": str(s.STACK_DIR / "s3")},
        ),
        Program(
            "airflow-init",
            f"{airflow} init",
            after=("postgres",),
            oneshot=True,
            done_already=airflow_schema_current,
        ),
        # MLflow runs its own migrations at start; artifacts go through it to S3 later.
        Program(
            "mlflow",
            f"{sh}/mlflow/entrypoint.sh",
            after=("postgres",),
            health=lambda s: http_ok(f"{s.mlflow_tracking_uri}/health"),
            env={"MLFLOW_AUTH_CONFIG_PATH": str(auth)} if (auth := mlflow_auth_config(s)) else {},
        ),
        # It polls MLflow for the champion and answers /health without one; it signs S3
        # requests as its own identity, which writes only its log and feedback.
        Program(
            "fastapi",
            f"{sh}/fastapi/entrypoint.sh",
            after=("s3",),
            health=lambda s: http_ok(f"{s.fastapi_url}/health"),
            env={"S3_IDENTITY": "serving"},
        ),
        *(
            Program(
                f"airflow-{component}",
                f"{airflow} {component}",
                after=brokered if component == "scheduler" else migrated,
                health=_airflow_component_healthy(component.replace("-", "_")),
            )
            for component in ("api-server", "scheduler", "dag-processor", "triggerer")
        ),
        *workers,
    ]


def broker_programs(s: Settings, binary: str | None) -> list[Program]:
    """The CeleryExecutor's broker, local only (compose runs Valkey): Debian's redis-server on
    loopback. No persistence: the scheduler queues a lost task again (task_queued_timeout)."""
    if not s.celery:
        return []
    return [
        Program(
            BROKER,
            f"{binary or 'redis-server'} --bind {s.BIND_HOST} --port {s.CELERY_BROKER_PORT}"
            f" --dir {s.STACK_DIR / 'broker'} --save '' --appendonly no --protected-mode yes"
            " --maxmemory 128mb --maxmemory-policy noeviction",
            health=broker_healthy,
        )
    ]


def optional_programs(s: Settings, prometheus: str | None) -> list[Program]:
    """Local-only extras that run when their binary is installed (compose runs their images)."""
    if not prometheus:
        return []
    from mlplatform.localstack.prometheus import LOCAL_CONFIG

    folder = s.STACK_DIR / "prometheus"
    return [
        Program(
            "prometheus",
            f"{prometheus} --config.file={folder / LOCAL_CONFIG}"
            f" --storage.tsdb.path={folder / 'data'} --storage.tsdb.retention.time=7d"
            f" --web.listen-address={s.BIND_HOST}:{s.PROMETHEUS_PORT}",
            health=lambda s: http_ok(f"{s.prometheus_url}/-/ready"),
        )
    ]


def after_start(s: Settings) -> None:
    """Once the stack is healthy: the buckets exist and the landing zone has its first delivery."""
    from mlplatform.ingest import seed_landing
    from mlplatform.lake import ensure_buckets

    ensure_buckets(s)
    seed_landing(s)
