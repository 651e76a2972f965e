"""Core subcommands: environment export, the local stack, its doctor, Airflow users, buckets,
S3 identities."""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any

from mlplatform.settings import get_settings


def cmd_env(args: argparse.Namespace) -> int:
    from mlplatform.localstack import export_env

    for key, value in sorted(export_env(get_settings()).items()):
        print(f"export {key}={shlex.quote(value)}")
    return 0


def cmd_local(args: argparse.Namespace) -> int:
    from mlplatform.localstack import LocalStack

    s = get_settings()
    stack = LocalStack(s)
    if args.action == "up":
        stack.up()
        print_urls()
    elif args.action == "down":
        if stack.supervisord_pid() is None and not stack.dir.exists():
            print("the local stack is not running")
            return 0
        orphans = stack.down()
        print("the local stack is stopped" + (f" (killed orphans: {orphans})" if orphans else ""))
    elif args.action == "status":
        from mlplatform.localstack import process_tree_pss_mb
        from mlplatform.localstack.services import WORKER_PREFIX

        rows = stack.status()
        total = 0.0
        for name, state, pid, health in rows:
            memory = process_tree_pss_mb(pid) if pid else 0.0
            total += memory
            print(f"{name:24s} {state:12s} pid={pid or '-':<8} {health:10s} {memory:6.0f} MB")
        print(f"{'total memory (PSS)':58s} {total:6.0f} MB")
        workers = [name for name, *_ in rows if name.startswith(WORKER_PREFIX)]
        if workers:
            print(
                f"Celery: {len(workers)} workers x {s.AIRFLOW_WORKER_CONCURRENCY} slots, "
                f"broker {s.celery_broker_url}; health = the worker answers a ping through it"
            )
        return 0 if all(h in ("healthy", "done") for *_, h in rows) else 1
    return 0


def print_urls() -> None:
    s = get_settings()
    print(
        f"""
  Airflow UI      {s.airflow_url}          login {s.AIRFLOW_ADMIN_USER} / {s.AIRFLOW_ADMIN_PASSWORD}
  MLflow UI       {s.mlflow_tracking_uri}
  S3 console      http://{s.MINIO_HOST}:{s.MINIO_PORT_UI}          login {s.MINIO_ACCESS_KEY} / {s.MINIO_SECRET_ACCESS_KEY}
  S3 API          {s.s3_endpoint_url}     buckets {s.DATA_REPO_BUCKET_NAME}, {s.MLFLOW_BUCKET_NAME}
  Prediction API  {s.fastapi_url}/docs
  PostgreSQL      {s.PG_HOST}:{s.PG_PORT}          role {s.PG_USER}, databases {s.PG_DATABASE}, {s.MLFLOW_PG_DATABASE}"""
    )
    from mlplatform.localstack import stack_programs

    if any(p.name == "prometheus" for p in stack_programs(s)):
        print(f"  Prometheus      {s.prometheus_url}")
    if s.celery:
        print(
            f"  Celery broker   {s.celery_broker_url}          {s.AIRFLOW_WORKERS} workers x "
            f"{s.AIRFLOW_WORKER_CONCURRENCY} slots (`mlplatform local status`)"
        )
    print()


def cmd_airflow_users(args: argparse.Namespace) -> int:
    """Write the SimpleAuthManager passwords file from the settings."""
    s = get_settings()
    path = s.airflow_home / "simple_auth_manager_passwords.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({s.AIRFLOW_ADMIN_USER: s.AIRFLOW_ADMIN_PASSWORD}))
    path.chmod(0o600)
    return 0


def cmd_lake_init(args: argparse.Namespace) -> int:
    from mlplatform.localstack import after_start

    after_start(get_settings())
    return 0


def cmd_s3_identities(args: argparse.Namespace) -> int:
    from mlplatform import s3_identities

    if args.format == "minio-apply":
        s3_identities.apply_to_minio(get_settings())
        print("the serving identity is in place on MinIO")
        return 0
    write = {
        "seaweedfs": s3_identities.seaweedfs_config,
        "minio-policy": s3_identities.minio_serving_policy,
    }[args.format]
    print(json.dumps(write(get_settings()), indent=2))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check what `make demo` and `make test` need; exit 1 if a required check fails."""
    from mlplatform.localstack import LocalStack, diagnose

    s = get_settings()
    checks = diagnose(s, stack_running=LocalStack(s).supervisord_pid() is not None)
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
        print(f"{mark} {c.what:34s} {c.detail}")
    todo = [c for c in checks if not c.ok]
    if todo:
        print("\nwhat to fix:")
        for c in todo:
            print(f"  {c.what}: {c.fix}")
    return 1 if any(c.required for c in todo) else 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("env", help="print the services' environment as shell exports")
    p.set_defaults(func=cmd_env)
    p = subparsers.add_parser("local", help="the local stack: up, down or status")
    p.add_argument("action", choices=["up", "down", "status"])
    p.set_defaults(func=cmd_local)
    p = subparsers.add_parser("airflow-users", help="write Airflow's admin login from the settings")
    p.set_defaults(func=cmd_airflow_users)
    p = subparsers.add_parser("doctor", help="check prerequisites, ports, memory and disk")
    p.set_defaults(func=cmd_doctor)
    p = subparsers.add_parser("lake-init", help="create the buckets and seed the landing zone")
    p.set_defaults(func=cmd_lake_init)
    p = subparsers.add_parser(
        "s3-identities", help="the S3 server's identities: as JSON, or applied to MinIO"
    )
    p.add_argument("format", choices=["seaweedfs", "minio-policy", "minio-apply"])
    p.set_defaults(func=cmd_s3_identities)
