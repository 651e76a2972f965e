"""LocalStack: start, watch and stop the local stack's programs under supervisord.

supervisord (a well-kept process manager) daemonizes, restarts crashed services,
kills whole process groups on stop and answers status over a Unix socket. This
class adds what it lacks: start in dependency order as soon as each program's
prerequisites are healthy (independent ones in parallel), port checks, live
progress, per-phase times, and a final sweep for orphans.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import time
import xmlrpc.client
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlplatform.errors import PlatformError
from mlplatform.localstack.environment import export_env
from mlplatform.localstack.files import StackFiles, prepare_files
from mlplatform.localstack.prereqs import (
    broker_binary,
    check_prerequisites,
    postgres_binaries,
    prometheus_binary,
    venv_path,
)
from mlplatform.localstack.procs import STACK_MARKER, alive, send_signal, stack_processes
from mlplatform.localstack.services import (
    BROKER,
    WORKER_PREFIX,
    Program,
    after_start,
    broker_programs,
    optional_programs,
    programs,
)
from mlplatform.progress import StatusBoard, status_board
from mlplatform.settings import Settings

POLL_SECONDS = 0.25
FAILED = ("FATAL", "EXITED", "STOPPED")

# Set by MLflow in a process that picked an experiment or run; meaningless to another stack.
INHERITED_MLFLOW_CONTEXT = frozenset({"MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"})


def stack_programs(s: Settings) -> list[Program]:
    """Every program this machine's stack runs: the compose ones plus the optional extras."""
    from mlplatform.localstack.prometheus import SHARED_CONFIG

    prometheus = prometheus_binary() if SHARED_CONFIG.exists() else None
    return programs(s) + broker_programs(s, broker_binary()) + optional_programs(s, prometheus)


def is_celery_program(name: str) -> bool:
    return name == BROKER or name.startswith(WORKER_PREFIX)


def executor_mismatch(wanted: list[Program], running: set[str]) -> str | None:
    """What differs between the Celery programs these settings want and those a running
    supervisord has (it keeps the executor and workers it was started with)."""
    want = {p.name for p in wanted if is_celery_program(p.name)}
    have = {name for name in running if is_celery_program(name)}
    if want == have:
        return None
    return (
        f"the running stack has {sorted(have) or 'no Celery programs'}, these settings want "
        f"{sorted(want) or 'none'}: stop it (`make local-down`), then start it with the "
        "AIRFLOW_EXECUTOR (make local EXECUTOR=...) and AIRFLOW_WORKERS you want"
    )


class LocalStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.files = StackFiles(settings.STACK_DIR.resolve())
        self.dir, self.logs, self.sock, self.pidfile = (
            self.files.dir,
            self.files.logs,
            self.files.sock,
            self.files.pidfile,
        )
        self.programs = stack_programs(settings)
        # Seconds since `up` began: when each program was started and when it was ready.
        self.timings: dict[str, tuple[float, float]] = {}
        self.skipped: set[str] = set()  # one-shots whose work was already done

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
        # Never a caller's MLflow context: an experiment or run id from another MLflow (e.g.
        # what `mlflow.set_experiment` exports in a test process) breaks every task's runs.
        env = {k: v for k, v in os.environ.items() if k not in INHERITED_MLFLOW_CONTEXT}
        env.update(export_env(self.settings))
        env.update(
            {
                "PATH": venv_path(),
                "TMPDIR": str(self.dir / "tmp"),
                STACK_MARKER: str(self.dir),
                "PYTHONUNBUFFERED": "1",
            }
        )
        pg = postgres_binaries()
        if pg is not None:
            env["PG_BIN"] = str(pg.bin_dir)
        return env

    def _start_supervisord(self) -> None:
        check_prerequisites(self.settings, any(p.name == "prometheus" for p in self.programs))
        conf = prepare_files(self.files, self.settings, self.programs)
        supervisord = shutil.which("supervisord", path=venv_path())
        if not supervisord:
            raise PlatformError("supervisord not found: run `uv sync`")
        subprocess.run([supervisord, "-c", str(conf)], env=self._environment(), check=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if self.rpc().getState()["statename"] == "RUNNING":
                    return
            except (OSError, xmlrpc.client.Error):
                pass
            time.sleep(0.1)
        raise PlatformError(f"supervisord did not start: see {self.logs / 'supervisord.log'}")

    # lifecycle

    def up(self, timeout: float = 480, quiet: bool = False) -> dict[str, tuple[float, float]]:
        """Start what is not running, wait until all is healthy; return the phase times."""
        started = time.monotonic()
        out = io.StringIO() if quiet else None
        with status_board("local stack", stream=out, live=False if quiet else None) as board:
            if self.supervisord_pid() is None:
                # supervisord died (e.g. killed): its services may still hold the ports.
                orphans = self._kill_orphans()
                if orphans:
                    board.note(
                        f"stopped {len(orphans)} processes left by a crashed stack: {orphans}"
                    )
                board.note(f"starting the local stack in {self.dir}")
                self._start_supervisord()
            else:
                board.note("the local stack is already running; starting what is not")
            self._start_all(board, started, started + timeout)
            board.set("buckets, seed data", "running")
            with contextlib.redirect_stdout(out) if out is not None else contextlib.nullcontext():
                after_start(self.settings)
            board.set("buckets, seed data", "done", final=True)
            self.timings["buckets, seed data"] = (
                self.timings.get("airflow-api-server", (0.0, 0.0))[1],
                time.monotonic() - started,
            )
        if not quiet:
            print(f"all services healthy after {time.monotonic() - started:.0f} s")
            print(self.phase_report())
        return self.timings

    def phase_report(self) -> str:
        lines = ["phase times (s since start): started -> ready = took"]
        for name, (begin, ready) in sorted(self.timings.items(), key=lambda kv: kv[1]):
            lines.append(f"  {name:24s} {begin:6.1f} -> {ready:6.1f} = {ready - begin:5.1f}")
        return "\n".join(lines)

    def _start_all(self, board: StatusBoard, started: float, deadline: float) -> None:
        s, server = self.settings, self.rpc()
        known = {i["name"]: i for i in server.getAllProcessInfo()}
        if mismatch := executor_mismatch(self.programs, set(known)):
            raise PlatformError(mismatch)
        todo = [p for p in self.programs if p.name in known]
        for p in todo:
            board.set(p.name, "waiting", plain=False)
        done: set[str] = set()
        waiting: dict[str, Program] = {}
        with ThreadPoolExecutor(max_workers=len(todo) or 1) as pool:
            while todo or waiting:
                for p in [p for p in todo if all(d in done for d in p.after)]:
                    todo.remove(p)
                    now = time.monotonic() - started
                    if p.oneshot and p.done_already is not None and p.done_already(s):
                        done.add(p.name)
                        self.skipped.add(p.name)
                        self.timings[p.name] = (now, time.monotonic() - started)
                        board.set(p.name, "current", final=True)
                        continue
                    state = known[p.name]["statename"]
                    if p.oneshot or state not in ("RUNNING", "STARTING", "BACKOFF"):
                        server.startProcess(p.name, False)
                    self.timings[p.name] = (now, now)
                    waiting[p.name] = p
                    board.set(p.name, "starting")
                infos = {i["name"]: i for i in server.getAllProcessInfo()}
                checks = {
                    name: pool.submit(p.health, s)
                    for name, p in waiting.items()
                    if p.health is not None and infos[name]["statename"] in ("RUNNING", "STARTING")
                }
                for name, p in list(waiting.items()):
                    info = infos[name]
                    if p.oneshot:
                        if info["statename"] == "EXITED" and info["exitstatus"] == 0:
                            ready = True
                        elif info["statename"] in ("EXITED", "FATAL", "BACKOFF"):
                            raise PlatformError(f"{name} failed: {self.tail(name)}")
                        else:
                            ready = False
                    elif info["statename"] in FAILED:
                        raise PlatformError(f"{name} is {info['statename']}: {self.tail(name)}")
                    else:
                        ready = name in checks and checks[name].result()
                    if ready:
                        del waiting[name]
                        done.add(name)
                        self.timings[name] = (self.timings[name][0], time.monotonic() - started)
                        board.set(name, "done" if p.oneshot else "healthy", final=True)
                if not (todo or waiting):
                    return
                if time.monotonic() > deadline:
                    stuck = sorted(waiting) + [f"{p.name} (never started)" for p in todo]
                    raise PlatformError(
                        f"not healthy in time: {', '.join(stuck)}; logs in {self.logs}"
                    )
                time.sleep(POLL_SECONDS)

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
            while time.monotonic() < deadline and alive(pid):
                time.sleep(0.2)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)
        return self._kill_orphans()

    def _kill_orphans(self) -> list[int]:
        orphans = stack_processes(self.dir)
        for pid in orphans:
            send_signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) for p in orphans):
            time.sleep(0.2)
        for pid in orphans:
            send_signal(pid, signal.SIGKILL)
        return orphans

    def status(self) -> list[tuple[str, str, int, str]]:
        """(name, supervisor state, pid, health) for every program."""
        if self.supervisord_pid() is None:
            return [(p.name, "NOT STARTED", 0, "-") for p in self.programs]
        infos = {i["name"]: i for i in self.rpc().getAllProcessInfo()}
        rows = []
        for p in self.running_programs(set(infos)):
            if p.name not in infos:
                continue  # installed after this stack started: the next start runs it
            info = infos[p.name]
            state = info["statename"]
            if p.oneshot:
                finished = state == "EXITED" and info["exitstatus"] == 0
                current = p.done_already is not None and p.done_already(self.settings)
                health = "done" if finished or (state == "STOPPED" and current) else "-"
            elif state != "RUNNING":
                health = "down"
            else:
                health = "healthy" if p.health and p.health(self.settings) else "unhealthy"
            rows.append((p.name, state, info["pid"], health))
        return rows

    def running_programs(self, running: set[str]) -> list[Program]:
        """The programs to report: these settings', or, when the running stack was started
        with another executor (`make local EXECUTOR=celery` sets it for that command only),
        those of the executor and worker count it runs."""
        if executor_mismatch(self.programs, running) is None:
            return self.programs
        workers = sum(name.startswith(WORKER_PREFIX) for name in running)
        executor = "CeleryExecutor" if BROKER in running or workers else "LocalExecutor"
        started = self.settings.model_copy(
            update={"AIRFLOW_EXECUTOR": executor, "AIRFLOW_WORKERS": max(workers, 1)}
        )
        return stack_programs(started)
