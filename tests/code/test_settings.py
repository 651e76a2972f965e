"""Settings: the course's names and defaults, and production's refusal of dev secrets."""

from __future__ import annotations

import pytest

from mlplatform.settings import DEV_SECRETS, Settings

COURSE_DEFAULTS = {
    "AIRFLOW_PORT": 8080,
    "MLFLOW_PORT": 5001,
    "MINIO_PORT": 9000,
    "MINIO_PORT_UI": 9001,
    "FASTAPI_PORT": 8800,
    "PG_PORT": 5432,
    "MLFLOW_BUCKET_NAME": "mlflow",
    "DATA_REPO_BUCKET_NAME": "data",
    "MINIO_ACCESS_KEY": "minio",
}


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [
        *Settings.model_fields,
        "MLFLOW_TRACKING_URI",
        "CELERY_BROKER_URL",
        "MLFLOW_S3_ENDPOINT_URL",
        "AIRFLOW_HOME",
    ]:
        monkeypatch.delenv(name, raising=False)


def test_course_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    for name, value in COURSE_DEFAULTS.items():
        assert getattr(s, name) == value, name
    assert s.mlflow_tracking_uri == "http://127.0.0.1:5001"
    assert s.s3_endpoint_url == "http://127.0.0.1:9000"


def test_dotenv_matches_the_code_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    from_file = Settings(_env_file=".env")  # type: ignore[call-arg]
    from_code = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_file.model_dump() == from_code.model_dump()


def test_environment_overrides_dotenv(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("MLFLOW_PORT", "5999")
    monkeypatch.setenv("MLFLOW_HOST", "mlflow")
    assert Settings().mlflow_tracking_uri == "http://mlflow:5999"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://elsewhere:1234")
    assert Settings().mlflow_tracking_uri == "http://elsewhere:1234"


# Named here, not read from the code's DEV_SECRETS: a secret dropped from the check fails a test.
SECRETS = (
    "PG_PASSWORD",
    "MINIO_SECRET_ACCESS_KEY",
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_API_SECRET_KEY",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "PREDICTION_ID_KEY",
    "SERVING_S3_SECRET_KEY",
    "API_KEY",
)
REFUSED = r"PLATFORM_ENV=production refuses a dev-default, empty or short .* value of "


def _own_secrets(monkeypatch: pytest.MonkeyPatch, *but: str) -> None:
    for name in SECRETS:
        if name not in but:
            monkeypatch.setenv(name, f"strong-{name.lower()}-value")


@pytest.mark.parametrize("secret", [s for s in SECRETS if s != "API_KEY"])
def test_production_refuses_each_dev_secret(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("PLATFORM_ENV", "production")
    _own_secrets(monkeypatch, secret)
    with pytest.raises(ValueError, match=REFUSED + secret):
        Settings()
    assert DEV_SECRETS[secret]  # the dev default it refused is the one .env ships


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("value", ["", "short"])
def test_production_refuses_empty_or_short_secrets(
    monkeypatch: pytest.MonkeyPatch, secret: str, value: str
) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("PLATFORM_ENV", "production")
    _own_secrets(monkeypatch, secret)
    monkeypatch.setenv(secret, value)
    with pytest.raises(ValueError, match=REFUSED + secret):
        Settings()


def test_production_starts_with_own_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("PLATFORM_ENV", "production")
    _own_secrets(monkeypatch)
    assert Settings().PLATFORM_ENV == "production"


def test_passwords_are_url_encoded_into_the_database_uris(monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.engine import make_url

    _clean_env(monkeypatch)
    monkeypatch.setenv("PG_PASSWORD", "p@ss:w/rd%41#")
    url = make_url(Settings().mlflow_db_url)
    assert url.password == "p@ss:w/rd%41#" and url.host == "127.0.0.1"


def test_cli_prints_one_line_for_dev_secrets_in_production(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    from mlplatform.cli import main
    from mlplatform.settings import get_settings

    _clean_env(monkeypatch)
    monkeypatch.setenv("PLATFORM_ENV", "production")
    get_settings.cache_clear()
    try:
        assert main(["env"]) == 1
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "refuses a dev-default" in err[0]


def test_service_env_configures_airflow_and_mlflow_from_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("PG_PORT", "6543")
    monkeypatch.setenv("AIRFLOW_PORT", "8181")
    env = Settings().service_env()
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith(":6543/airflow")
    assert env["MLFLOW_BACKEND_STORE_URI"].endswith(":6543/mlflow_db")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8181/execution/"
    assert env["AWS_SECRET_ACCESS_KEY"] == DEV_SECRETS["MINIO_SECRET_ACCESS_KEY"]


def test_parallelism_is_every_slot_of_every_worker_unless_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clean_env(monkeypatch)
    local = Settings(_env_file=None)  # type: ignore[call-arg]
    assert not local.celery and local.airflow_parallelism == local.AIRFLOW_WORKER_CONCURRENCY == 2
    monkeypatch.setenv("AIRFLOW_EXECUTOR", "CeleryExecutor")
    monkeypatch.setenv("AIRFLOW_WORKERS", "3")
    celery = Settings(_env_file=None)  # type: ignore[call-arg]
    assert celery.celery and celery.service_env()["AIRFLOW__CORE__PARALLELISM"] == "6"
    monkeypatch.setenv("AIRFLOW_WORKER_CONCURRENCY", "4")
    assert Settings(_env_file=None).airflow_parallelism == 12  # type: ignore[call-arg]
    monkeypatch.setenv("AIRFLOW_PARALLELISM", "5")  # set: taken as it is
    assert Settings(_env_file=None).service_env()["AIRFLOW__CORE__PARALLELISM"] == "5"  # type: ignore[call-arg]
    monkeypatch.setenv(
        "AIRFLOW_EXECUTOR", "airflow.providers.celery.executors.celery_executor.CeleryExecutor"
    )
    assert Settings(_env_file=None).celery  # type: ignore[call-arg]
    monkeypatch.setenv("AIRFLOW_WORKERS", "0")
    with pytest.raises(ValueError, match="AIRFLOW_WORKERS"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_broker_url_comes_from_host_and_port_or_the_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("CELERY_BROKER_PORT", "16379")
    env = Settings(_env_file=None).service_env()  # type: ignore[call-arg]
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:16379/0"
    monkeypatch.setenv("CELERY_BROKER_URL", "rediss://broker.example:6380/2")
    env = Settings(_env_file=None).service_env()  # type: ignore[call-arg]
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "rediss://broker.example:6380/2"
    assert env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "2"
