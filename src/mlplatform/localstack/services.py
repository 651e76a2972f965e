"""The programs of the local stack: what each runs, what it waits for, how its health is checked.

Compose reuses the health checks (`programs(s)` by name), so they take only Settings.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import httpx

from mlplatform.settings import REPO_ROOT, Settings


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
                after=migrated,
                health=_airflow_component_healthy(component.replace("-", "_")),
            )
            for component in ("api-server", "scheduler", "dag-processor", "triggerer")
        ),
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
