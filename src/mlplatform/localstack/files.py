"""Where a local stack keeps its files, and what it writes there before supervisord starts."""

from __future__ import annotations

import configparser
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from mlplatform.localstack.prereqs import PG_OS_USER, ensure_postgres_user, postgres_binaries
from mlplatform.localstack.services import BROKER, Program, mlflow_auth_config
from mlplatform.settings import REPO_ROOT, Settings


@dataclass(frozen=True)
class StackFiles:
    dir: Path

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def conf(self) -> Path:
        return self.dir / "supervisord.conf"

    @property
    def sock(self) -> Path:
        return self.dir / "supervisor.sock"

    @property
    def pidfile(self) -> Path:
        return self.dir / "supervisord.pid"


def make_reachable(path: Path) -> None:
    """Let other users traverse every parent of `path` (the `postgres` user must reach it)."""
    for parent in (path, *path.parents):
        if parent == Path("/"):
            break
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o011)


def supervisord_config(stack: StackFiles, progs: list[Program], as_root: bool) -> str:
    """supervisord's config file for these programs (pure: no I/O)."""
    lines = [
        "[unix_http_server]",
        f"file={stack.sock}",
        "chmod=0700",
        "[supervisord]",
        f"logfile={stack.logs / 'supervisord.log'}",
        f"pidfile={stack.pidfile}",
        # Every service's working directory, so `down` can find its orphans by it too.
        f"directory={stack.dir}",
        "logfile_maxbytes=10MB",
        "logfile_backups=1",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "[supervisorctl]",
        f"serverurl=unix://{stack.sock}",
    ]
    for p in progs:
        env = ",".join(f'{k}="{v}"' for k, v in p.env.items())
        lines += [
            f"[program:{p.name}]",
            f"command={p.command}",
            "autostart=false",
            f"autorestart={'false' if p.oneshot else 'unexpected'}",
            # The health checks decide readiness; this only marks a quick crash as a failed start.
            f"startsecs={0 if p.oneshot else 1}",
            "startretries=2",
            f"stopsignal={p.stop_signal}",
            "stopwaitsecs=30",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={stack.logs / (p.name + '.log')}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=1",
        ]
        if env:
            lines.append(f"environment={env}")
        if p.as_postgres_user and as_root:
            lines.append(f"user={PG_OS_USER}")
    return "\n".join(lines) + "\n"


def write_mlflow_auth_config(path: Path) -> None:
    """Compose's basic-auth config (mlflow/basic_auth.ini), its users' database beside it."""
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "mlflow" / "basic_auth.ini")
    config["mlflow"]["database_uri"] = f"sqlite:///{path.parent / 'mlflow-auth.db'}"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with path.open("w") as out:
        config.write(out)


def prepare_files(files: StackFiles, settings: Settings, programs: list[Program]) -> Path:
    """The folders (PostgreSQL's owned by its user when root), Prometheus's config, supervisord's."""
    for sub in ("logs", "tmp", "s3", "airflow"):
        (files.dir / sub).mkdir(parents=True, exist_ok=True)
    pg_dir = files.dir / "postgres"
    pg_dir.mkdir(exist_ok=True)
    if any(p.name == BROKER for p in programs):
        (files.dir / "broker").mkdir(exist_ok=True)
    if any(p.name == "prometheus" for p in programs):
        from mlplatform.localstack.prometheus import write_local_config

        write_local_config(settings, files.dir / "prometheus")
    if os.geteuid() == 0:
        ensure_postgres_user()
        user = pwd.getpwnam(PG_OS_USER)
        for path in (pg_dir, *pg_dir.rglob("*")):
            os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
        make_reachable(files.dir)
        pg = postgres_binaries()
        if pg is not None and pg.source == "pgserver wheel":
            make_reachable(pg.bin_dir)
    if auth := mlflow_auth_config(settings):
        write_mlflow_auth_config(auth)
    files.conf.write_text(supervisord_config(files, programs, os.geteuid() == 0))
    return files.conf
