"""Local-stack logic that needs no running services."""

from __future__ import annotations

import importlib
import os
import random
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mlplatform.errors import PlatformError
from mlplatform.localstack import (
    LocalStack,
    check_prerequisites,
    diagnose,
    find_postgres,
    free_ports,
    ports,
    prereqs,
    programs,
    stack_processes,
    stack_programs,
)
from mlplatform.localstack.environment import HOSTNAME_CALLABLE
from mlplatform.localstack.files import StackFiles, supervisord_config
from mlplatform.localstack.prereqs import PG_TOOLS, PgBinaries, pgserver_bin_dir
from mlplatform.localstack.prometheus import localize, write_local_config
from mlplatform.localstack.services import (
    BROKER,
    migration_heads,
    optional_programs,
    worker_nodename,
)
from mlplatform.localstack.supervisor import executor_mismatch
from mlplatform.settings import REPO_ROOT, Settings


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(_env_file=None, STACK_DIR=tmp_path, **overrides)  # type: ignore[call-arg]


def test_a_port_in_use_is_named_with_its_variable(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = _settings(tmp_path, **{**free_ports(), "FASTAPI_PORT": port})
        with pytest.raises(PlatformError) as err:
            check_prerequisites(settings)
    assert str(err.value) == (
        f"port {port} (FASTAPI_PORT) is already in use: stop what uses it or set another port in .env"
    )


def test_free_ports_are_free_and_distinct(tmp_path: Path) -> None:
    check_prerequisites(_settings(tmp_path, **free_ports()))


def test_every_port_is_distinct_by_default(tmp_path: Path) -> None:
    values = list(ports(_settings(tmp_path)).values())
    assert len(values) == len(set(values))


def test_a_stale_pid_file_is_cleared(tmp_path: Path) -> None:
    stack = LocalStack(_settings(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    stack.pidfile.write_text(str(dead.pid))
    stack.sock.write_text("")
    assert stack.supervisord_pid() is None
    assert not stack.pidfile.exists() and not stack.sock.exists()


def test_a_pid_reused_by_another_program_is_not_taken_for_supervisord(tmp_path: Path) -> None:
    stack = LocalStack(_settings(tmp_path))
    stack.pidfile.write_text(str(os.getpid()))  # alive, but pytest, not supervisord
    assert stack.supervisord_pid() is None


def test_orphans_are_found_by_working_directory(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "30"], cwd=tmp_path)
    try:
        assert child.pid in stack_processes(tmp_path.resolve())
    finally:
        child.kill()
        child.wait()


def test_every_program_runs_an_entrypoint_of_its_service_folder(tmp_path: Path) -> None:
    for program in programs(_settings(tmp_path, AIRFLOW_EXECUTOR="CeleryExecutor")):
        script = Path(program.command.split()[1])
        assert script.is_file() and os.access(script, os.X_OK), program
        assert script.parent.parent == REPO_ROOT
        assert script.parent.name in ("postgres", "minio", "mlflow", "airflow", "fastapi")


def test_free_ports_are_distinct_including_derived_ranges(tmp_path: Path) -> None:
    for seed in range(20):
        allocated = free_ports(low=20000, high=20400, rng=random.Random(seed))
        settings = _settings(tmp_path, **allocated, AIRFLOW_EXECUTOR="CeleryExecutor")
        used = list(ports(settings, prometheus=True).values())
        assert len(used) == len(set(used)), (seed, sorted(used))
        assert set(allocated) <= {n.split(" ")[0] for n in ports(settings, prometheus=True)}


def test_the_default_ports_with_prometheus_are_distinct(tmp_path: Path) -> None:
    values = list(ports(_settings(tmp_path), prometheus=True).values())
    assert len(values) == len(set(values))
    assert 9090 in values


def _fake_pg(bin_dir: Path, tools: tuple[str, ...] = PG_TOOLS) -> Path:
    bin_dir.mkdir(parents=True)
    for tool in tools:
        (bin_dir / tool).write_text("#!/bin/sh\n")
        (bin_dir / tool).chmod(0o755)
    return bin_dir


def test_system_postgres_is_preferred_to_the_wheel_and_the_newest_wins(tmp_path: Path) -> None:
    system = tmp_path / "lib"
    _fake_pg(system / "9" / "bin")
    newest = _fake_pg(system / "16" / "bin")
    wheel = _fake_pg(tmp_path / "wheel" / "bin")
    found = find_postgres(path="", system_root=system, wheel_bin=wheel)
    assert found == PgBinaries(newest, "system")


def test_postgres_on_path_comes_first_and_an_incomplete_folder_is_passed_over(
    tmp_path: Path,
) -> None:
    system = tmp_path / "lib"
    _fake_pg(system / "17" / "bin", tools=("postgres", "initdb"))  # no pg_ctl, psql
    on_path = _fake_pg(tmp_path / "path")
    wheel = _fake_pg(tmp_path / "wheel" / "bin")
    assert find_postgres(path=str(on_path), system_root=system, wheel_bin=wheel) == PgBinaries(
        on_path.resolve(), "PATH"
    )
    assert find_postgres(path="", system_root=system, wheel_bin=wheel) == PgBinaries(
        wheel, "pgserver wheel"
    )
    assert find_postgres(path="", system_root=system, wheel_bin=None) is None


def test_an_explicit_pg_bin_wins_and_must_be_complete(tmp_path: Path) -> None:
    chosen = _fake_pg(tmp_path / "chosen")
    assert find_postgres(str(chosen), path="", system_root=tmp_path) == PgBinaries(chosen, "PG_BIN")
    assert find_postgres(str(tmp_path / "missing"), path="", system_root=tmp_path) is None


def test_the_pgserver_wheel_ships_runnable_postgres_16() -> None:
    wheel = pgserver_bin_dir()
    assert wheel is not None and all((wheel / tool).is_file() for tool in PG_TOOLS)
    out = subprocess.run([wheel / "postgres", "--version"], capture_output=True, text=True)
    assert out.stdout.startswith("postgres (PostgreSQL) 16."), out


def test_migration_heads_follow_the_chain_and_merges(tmp_path: Path) -> None:
    scripts = {
        "a.py": 'revision = "aa01"\ndown_revision = None\n',
        "b.py": 'revision = "bb02"\ndown_revision = "aa01"\n',
        "c.py": 'revision: str = "cc03"\ndown_revision = "aa01"\n',
        "d.py": 'revision = "dd04"\ndown_revision = ("bb02", "cc03")\n',
    }
    for name, text in scripts.items():
        (tmp_path / name).write_text(text)
    assert migration_heads(tmp_path) == {"dd04"}
    (tmp_path / "e.py").write_text('revision = "ee05"\ndown_revision = "dd04"\n')
    assert migration_heads(tmp_path) == {"ee05"}


def test_airflows_own_migrations_have_one_head() -> None:
    import importlib.util

    spec = importlib.util.find_spec("airflow")
    assert spec is not None and spec.submodule_search_locations
    versions = Path(next(iter(spec.submodule_search_locations))) / "migrations" / "versions"
    assert len(migration_heads(versions)) == 1


@pytest.mark.parametrize("executor", ["LocalExecutor", "CeleryExecutor"])
def test_every_dependency_names_a_program_and_the_order_has_no_cycle(
    tmp_path: Path, executor: str
) -> None:
    progs = {p.name: p for p in stack_programs(_settings(tmp_path, AIRFLOW_EXECUTOR=executor))}
    done: set[str] = set()
    while len(done) < len(progs):
        ready = {n for n, p in progs.items() if n not in done and set(p.after) <= done}
        assert ready, f"a dependency cycle or an unknown name among {set(progs) - done}"
        done |= ready


def test_celery_adds_the_broker_and_named_workers_only_with_its_executor(tmp_path: Path) -> None:
    local = {p.name for p in stack_programs(_settings(tmp_path))}
    assert not {n for n in local if n == BROKER or n.startswith("airflow-worker")}
    assert "CELERY_BROKER_PORT" not in ports(_settings(tmp_path))  # a busy 6379 is no matter
    s = _settings(tmp_path, AIRFLOW_EXECUTOR="CeleryExecutor", AIRFLOW_WORKERS=3)
    progs = {p.name: p for p in stack_programs(s)}
    workers = [progs[f"airflow-worker-{i}"] for i in (1, 2, 3)]
    assert "airflow-worker-4" not in progs and ports(s)["CELERY_BROKER_PORT"] == 6379
    names = {w.env["AIRFLOW_WORKER_NAME"] for w in workers}
    assert len(names) == 3 and all(re.fullmatch(r"airflow-worker-\d@[\w.-]+", n) for n in names)
    for w in workers:
        assert BROKER in w.after and "airflow-init" in w.after
        assert w.env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == HOSTNAME_CALLABLE
    assert BROKER in progs["airflow-scheduler"].after
    # Loopback only, in STACK_DIR, no persistence, on its own port.
    broker = shlex.split(progs[BROKER].command)
    options = dict(zip(broker[1::2], broker[2::2], strict=True))
    assert options["--bind"] == "127.0.0.1" and options["--port"] == "6379"
    assert options["--dir"] == str(tmp_path / "broker")
    assert options["--save"] == "" and options["--appendonly"] == "no"
    # supervisord hands each worker its name (the entrypoint's --celery-hostname).
    conf = supervisord_config(StackFiles(tmp_path), list(progs.values()), as_root=False)
    section = conf.split("[program:airflow-worker-2]")[1].split("[program:")[0]
    assert f'AIRFLOW_WORKER_NAME="{worker_nodename(2)}"' in section


def test_the_task_hostname_is_the_workers_name(monkeypatch: pytest.MonkeyPatch) -> None:
    module, _, function = HOSTNAME_CALLABLE.rpartition(".")
    callable_ = getattr(importlib.import_module(module), function)
    monkeypatch.setenv("AIRFLOW_WORKER_NAME", "airflow-worker-2@host")
    assert callable_() == "airflow-worker-2@host"
    monkeypatch.delenv("AIRFLOW_WORKER_NAME")
    assert callable_() == socket.getfqdn()


def test_the_worker_entrypoint_names_the_worker_and_skips_the_log_server() -> None:
    """Several workers on one machine: each its own node name, none binds 0.0.0.0:8793."""
    script = (REPO_ROOT / "airflow" / "entrypoint.sh").read_text()
    case = script.split("  worker)")[1].split(";;")[0]
    assert (
        'exec airflow celery worker --celery-hostname "$AIRFLOW_WORKER_NAME" --skip-serve-logs'
        in case
    )


def test_a_stack_running_another_executor_is_named_not_half_started(tmp_path: Path) -> None:
    celery = stack_programs(_settings(tmp_path, AIRFLOW_EXECUTOR="CeleryExecutor"))
    local = stack_programs(_settings(tmp_path))
    assert executor_mismatch(celery, {p.name for p in celery}) is None
    assert executor_mismatch(local, {p.name for p in local}) is None
    problem = executor_mismatch(celery, {p.name for p in local})
    assert problem and "make local-down" in problem and "airflow-worker-1" in problem
    assert executor_mismatch(local, {p.name for p in celery})
    three = stack_programs(
        _settings(tmp_path, AIRFLOW_EXECUTOR="CeleryExecutor", AIRFLOW_WORKERS=3)
    )
    assert executor_mismatch(three, {p.name for p in celery})
    # `local status` without EXECUTOR=celery still reports the workers a Celery stack runs.
    stack = LocalStack(_settings(tmp_path))
    shown = {p.name for p in stack.running_programs({p.name for p in three})}
    assert {"airflow-worker-3", BROKER} <= shown


def test_a_missing_broker_is_named_only_for_celery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prereqs, "broker_binary", lambda: None)
    celery = _settings(tmp_path, **free_ports(), AIRFLOW_EXECUTOR="CeleryExecutor")
    with pytest.raises(PlatformError, match="apt-get install -y redis-server"):
        check_prerequisites(celery)
    check_prerequisites(_settings(tmp_path, **free_ports()))
    for settings, required in ((celery, True), (_settings(tmp_path, **free_ports()), False)):
        check = next(c for c in diagnose(settings, False) if c.what.startswith("redis-server"))
        assert not check.ok and check.required is required and "redis-server" in check.fix


def test_the_broker_and_worker_checks_fail_without_a_broker(tmp_path: Path) -> None:
    s = _settings(tmp_path, **free_ports(), AIRFLOW_EXECUTOR="CeleryExecutor")
    progs = {p.name: p for p in stack_programs(s)}
    for name in (BROKER, "airflow-worker-1"):
        health = progs[name].health
        assert health is not None and health(s) is False


def test_prometheus_is_optional(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert [p.name for p in optional_programs(settings, None)] == []
    (prom,) = optional_programs(settings, "/usr/bin/prometheus")
    assert f"--web.listen-address=127.0.0.1:{settings.PROMETHEUS_PORT}" in prom.command


def test_the_local_prometheus_config_targets_the_local_services(tmp_path: Path) -> None:
    shared = {
        "global": {"scrape_interval": "15s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            {"job_name": "fastapi", "static_configs": [{"targets": ["fastapi:8800"]}]},
            {
                "job_name": "replicas",
                "dns_sd_configs": [{"names": ["fastapi"], "type": "A", "port": 8800}],
            },
            {"job_name": "grafana", "static_configs": [{"targets": ["grafana:3000"]}]},
        ],
    }
    addresses = {"fastapi": "127.0.0.1:18800"}
    config = localize(shared, addresses, Path("/repo/monitoring"))
    assert config["rule_files"] == ["/repo/monitoring/alerts.yml"]
    assert config["global"] == shared["global"]
    assert config["scrape_configs"] == [
        {"job_name": "fastapi", "static_configs": [{"targets": ["127.0.0.1:18800"]}]},
        {"job_name": "replicas", "static_configs": [{"targets": ["127.0.0.1:18800"]}]},
    ]


def test_the_written_local_prometheus_config_is_valid(tmp_path: Path) -> None:
    settings = _settings(tmp_path, FASTAPI_PORT=18800)
    path = write_local_config(settings, tmp_path / "prometheus")
    text = path.read_text()
    assert "127.0.0.1:18800" in text and "fastapi:8800" not in text
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: apt-get install -y prometheus"
    check = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_postgres_runs_as_its_own_user_only_when_started_by_root(tmp_path: Path) -> None:
    files, progs = StackFiles(tmp_path), programs(_settings(tmp_path))
    as_root = supervisord_config(files, progs, as_root=True)
    as_user = supervisord_config(files, progs, as_root=False)
    postgres_section = as_root.split("[program:postgres]")[1].split("[program:")[0]
    assert "user=postgres" in postgres_section
    assert as_root.count("user=") == 1
    assert "user=" not in as_user


def test_the_package_names_load_lazily_and_all_resolve() -> None:
    import mlplatform.localstack as package

    assert sorted(package.__all__) == sorted(package._HOME)
    for name in package.__all__:
        assert getattr(package, name) is not None
    with pytest.raises(AttributeError):
        _ = package.no_such_name


def test_the_doctor_names_a_busy_port_and_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = _settings(tmp_path, **{**free_ports(), "MLFLOW_PORT": port})
        checks = {c.what: c for c in diagnose(settings, stack_running=False)}
    busy = checks[f"port {port} (MLFLOW_PORT)"]
    assert not busy.ok and busy.required and "another port in .env" in busy.fix
    assert checks["PostgreSQL server"].ok  # the pgserver wheel at least
    assert {"Python >= 3.11", "memory available", "disk free", "weed"} <= set(checks)


def test_the_doctor_passes_with_free_ports(tmp_path: Path) -> None:
    checks = diagnose(_settings(tmp_path, **free_ports()), stack_running=False)
    failed = [c for c in checks if c.required and not c.ok]
    assert not failed, failed


def test_the_celery_executor_imports_with_the_locked_celery() -> None:
    """celery 5.7 broke the provider's import (celery.backends.database.retry): every Celery
    worker died at start, in compose too. Checked here without a stack."""
    code = "import airflow.providers.celery.executors.celery_executor"
    env = {**os.environ, "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_services_never_inherit_the_callers_mlflow_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlflow.set_experiment` exports MLFLOW_EXPERIMENT_ID in its process; a stack started
    from that process must not hand it on (another MLflow's id fails every task's runs)."""
    from mlplatform.localstack import LocalStack

    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "1")
    monkeypatch.setenv("MLFLOW_RUN_ID", "0123456789abcdef")
    monkeypatch.setenv("SOME_USER_VARIABLE", "kept")
    env = LocalStack(Settings(_env_file=None, STACK_DIR=tmp_path))._environment()  # type: ignore[call-arg]
    assert "MLFLOW_EXPERIMENT_ID" not in env and "MLFLOW_RUN_ID" not in env
    assert env["SOME_USER_VARIABLE"] == "kept"
    assert env["MLFLOW_TRACKING_URI"].startswith("http://")
