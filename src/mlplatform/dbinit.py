"""Create the platform's PostgreSQL databases when they are missing, at every service start.

PostgreSQL's init scripts run only on an empty data volume, so a reused volume or a renamed
`MLFLOW_PG_DATABASE` would otherwise leave MLflow crash-looping (and the parallel search
without its `OPTUNA_PG_DATABASE`). The MLflow entrypoint runs
`python -m mlplatform.dbinit` before the server; it is idempotent and safe to run concurrently.
"""

from __future__ import annotations

import sys
from typing import Any

import psycopg2
from psycopg2 import errors, sql

from mlplatform.errors import ConfigurationError
from mlplatform.settings import Settings, get_settings

# Always present after initdb; CREATE DATABASE cannot run inside the database it creates.
MAINTENANCE_DB = "postgres"


def create_database_sql(name: str, owner: str) -> sql.Composed:
    """The statement, with both names quoted as identifiers (no injection through settings)."""
    return sql.SQL("CREATE DATABASE {} OWNER {}").format(
        sql.Identifier(name), sql.Identifier(owner)
    )


def connect(s: Settings, database: str, timeout: float) -> Any:
    """A connection as the platform role. Keyword arguments, not a URI: a password needs no
    URL-encoding this way."""
    return psycopg2.connect(
        host=s.PG_HOST,
        port=s.PG_PORT,
        user=s.PG_USER,
        password=s.PG_PASSWORD,
        dbname=database,
        connect_timeout=int(timeout),
    )


def ensure_database(s: Settings, name: str) -> bool:
    """Create database `name`, owned by the platform role, if it is missing. True if created."""
    if not name:
        raise ConfigurationError("the database name is empty")
    conn = connect(s, MAINTENANCE_DB, timeout=10)
    try:
        conn.autocommit = True  # CREATE DATABASE refuses to run in a transaction
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone():
                return False
            try:
                cur.execute(create_database_sql(name, s.PG_USER))
            except errors.DuplicateDatabase:
                return False  # another starting service created it first
            return True
    finally:
        conn.close()


def main() -> int:
    s = get_settings()
    # MLflow's store, and the shared Optuna studies of a parallel search (the training DAG
    # also creates the latter itself, for deployments that skip this step).
    for name in (s.MLFLOW_PG_DATABASE, s.OPTUNA_PG_DATABASE):
        try:
            created = ensure_database(s, name)
        except psycopg2.Error as err:
            print(f"error: cannot create database {name}: {err}".strip(), file=sys.stderr)
            return 1
        if created:
            print(f"created database {name} owned by {s.PG_USER}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
