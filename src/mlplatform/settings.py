"""One settings object for every service, read from the environment and `.env`.

The variable names are the course's `.env` names, so the same file drives the
local stack and docker compose; only host names differ between the two.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import Field, computed_field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplatform.errors import ConfigurationError

REPO_ROOT = Path(__file__).resolve().parents[2]

# Dev defaults of every secret. `.env` ships these values; production refuses them.
DEV_SECRETS: dict[str, str] = {
    "PG_PASSWORD": "airflow",
    "MINIO_SECRET_ACCESS_KEY": "minio123",
    "AIRFLOW_ADMIN_PASSWORD": "airflow",
    "AIRFLOW_JWT_SECRET": "dev-jwt-secret-change-me-in-production",
    "AIRFLOW_FERNET_KEY": "hU6z1WnKy8VXiCzkb6ZOpJrgzzLAbS0bMGvRQzCA3X4=",
    "PREDICTION_ID_KEY": "dev-prediction-id-key-change-me",
    "AIRFLOW_API_SECRET_KEY": "dev-api-secret-key-change-me-in-production",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-dev-password",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "dev-flask-secret-change-me-in-production",
    "SERVING_S3_SECRET_KEY": "serving-s3-dev-secret",
}


# Every secret a process may hold: the dev defaults, and the API key (empty in dev = no auth).
SECRETS = (*DEV_SECRETS, "API_KEY")
# Production refuses shorter secrets (the Fernet key and JWT secret are longer anyway).
MIN_SECRET_LENGTH = 12


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True
    )

    PLATFORM_ENV: Literal["dev", "test", "production"] = "dev"
    # The secrets this process holds, comma-separated; empty means all. Compose gives each
    # service only the secrets it uses and names them here: the others are blanked, so no dev
    # default stands in for them, and production checks only these.
    SERVICE_SECRETS: str = ""
    # Interface every service binds to; loopback for the local stack, 0.0.0.0 inside containers.
    BIND_HOST: str = "127.0.0.1"
    # Where the local stack keeps its state and logs.
    STACK_DIR: Path = REPO_ROOT / ".local-stack"

    # PostgreSQL: one role owns the Airflow and the MLflow databases.
    PG_HOST: str = "127.0.0.1"
    PG_PORT: int = 5432
    PG_USER: str = "airflow"
    PG_PASSWORD: str = DEV_SECRETS["PG_PASSWORD"]
    PG_DATABASE: str = "airflow"
    MLFLOW_PG_DATABASE: str = "mlflow_db"

    # S3 (MinIO in compose, SeaweedFS in the local stack).
    MINIO_HOST: str = "127.0.0.1"
    MINIO_PORT: int = 9000
    MINIO_PORT_UI: int = 9001
    MINIO_ACCESS_KEY: str = "minio"
    MINIO_SECRET_ACCESS_KEY: str = DEV_SECRETS["MINIO_SECRET_ACCESS_KEY"]
    MLFLOW_BUCKET_NAME: str = "mlflow"
    DATA_REPO_BUCKET_NAME: str = "data"
    # The prediction service's own S3 identity (mlplatform.s3_identities): it reads the data
    # bucket and writes only its prediction log and feedback. S3_IDENTITY picks the keys a
    # process signs with; the S3 server knows both identities.
    S3_IDENTITY: Literal["platform", "serving"] = "platform"
    SERVING_S3_ACCESS_KEY: str = "serving"
    SERVING_S3_SECRET_KEY: str = DEV_SECRETS["SERVING_S3_SECRET_KEY"]
    # SeaweedFS needs eight more ports; they are allocated upward from this one.
    SEAWEEDFS_PORT_BASE: int = 19330
    S3_ENDPOINT_URL_OVERRIDE: str = Field(default="", alias="MLFLOW_S3_ENDPOINT_URL")

    # MLflow.
    MLFLOW_HOST: str = "127.0.0.1"
    MLFLOW_PORT: int = 5001
    MLFLOW_TRACKING_URI_OVERRIDE: str = Field(default="", alias="MLFLOW_TRACKING_URI")
    MLFLOW_EXPERIMENT_NAME: str = "heart_disease"
    MLFLOW_ALLOWED_HOSTS: str = "mlflow:5000,mlflow:*,localhost:*,127.0.0.1:*"
    REGISTERED_MODEL_NAME: str = "heart_disease_classifier"
    # Clients' login (MLflow reads these names itself); compose's MLflow server runs its
    # basic-auth app with them as admin, and with the Flask secret for its CSRF tokens.
    MLFLOW_TRACKING_USERNAME: str = "admin"
    MLFLOW_TRACKING_PASSWORD: str = DEV_SECRETS["MLFLOW_TRACKING_PASSWORD"]
    MLFLOW_FLASK_SERVER_SECRET_KEY: str = DEV_SECRETS["MLFLOW_FLASK_SERVER_SECRET_KEY"]

    # Airflow.
    AIRFLOW_HOST: str = "127.0.0.1"
    AIRFLOW_PORT: int = 8080
    # The URL browsers use, when it differs from the one services use (compose: localhost).
    AIRFLOW_PUBLIC_URL: str = ""
    AIRFLOW_ADMIN_USER: str = "airflow"
    AIRFLOW_ADMIN_PASSWORD: str = DEV_SECRETS["AIRFLOW_ADMIN_PASSWORD"]
    AIRFLOW_JWT_SECRET: str = DEV_SECRETS["AIRFLOW_JWT_SECRET"]
    AIRFLOW_FERNET_KEY: str = DEV_SECRETS["AIRFLOW_FERNET_KEY"]
    # [api] secret_key signs the log servers' tokens: one value for every Airflow process.
    AIRFLOW_API_SECRET_KEY: str = DEV_SECRETS["AIRFLOW_API_SECRET_KEY"]
    # LocalExecutor (the scheduler runs the tasks) or CeleryExecutor (workers take them from a
    # broker: `make local EXECUTOR=celery`; compose always runs Celery).
    AIRFLOW_EXECUTOR: str = "LocalExecutor"
    # Celery workers: the local stack starts this many, compose this many airflow-worker
    # replicas (`--scale airflow-worker=N` needs AIRFLOW_WORKERS=N too: parallelism counts them).
    AIRFLOW_WORKERS: int = Field(default=2, ge=1)
    # Task slots per Celery worker, and of the LocalExecutor; each running task is a process
    # of about 250 MB.
    AIRFLOW_WORKER_CONCURRENCY: int = Field(default=2, ge=1)
    # Tasks running at once in the whole deployment; 0 derives it from the workers' slots.
    AIRFLOW_PARALLELISM: int = Field(default=0, ge=0)
    AIRFLOW_HOME_OVERRIDE: str = Field(default="", alias="AIRFLOW_HOME")
    AIRFLOW_DAGS_FOLDER: Path = REPO_ROOT / "airflow" / "dags"
    # The Celery broker, Redis protocol: Debian's redis-server in the local stack, Valkey in
    # compose. CELERY_BROKER_URL replaces the URL made from these (e.g. a managed one).
    CELERY_BROKER_HOST: str = "127.0.0.1"
    CELERY_BROKER_PORT: int = 6379
    CELERY_BROKER_URL_OVERRIDE: str = Field(default="", alias="CELERY_BROKER_URL")

    # Data and training pipelines.
    # The UCI files the landing zone is seeded from (shipped in the repo, CC BY 4.0).
    SEED_DATA_DIR: Path = REPO_ROOT / "data" / "uci_heart_disease"
    RANDOM_SEED: int = 42
    TEST_FRACTION: float = 0.2
    N_TRIALS: int = 20  # Optuna trials of the training DAG (a DAG param overrides it per run)
    # Parallel search tasks of the training DAG (a DAG param overrides it). 1: one in-process,
    # seeded, deterministic study; K > 1: K mapped tasks share one Optuna study stored in
    # PostgreSQL database OPTUNA_PG_DATABASE, so Celery workers on several machines can join.
    SEARCH_WORKERS: int = Field(default=1, ge=1)
    OPTUNA_PG_DATABASE: str = "optuna_db"
    CV_FOLDS: int = 5
    RETRAIN_TRIALS: int = 0  # 0: the challenger is the champion's configuration refit on new data
    # The promotion gate (mlplatform.evaluation.promotion_gate): the challenger is promoted only
    # when the PROMOTION_CONFIDENCE paired-bootstrap interval of its improvement on the same test
    # rows lies above 0, and no source with PROMOTION_MIN_SOURCE_ROWS test rows or more loses
    # more than PROMOTION_MAX_SOURCE_DROP of the metric.
    PROMOTION_CONFIDENCE: float = Field(default=0.95, gt=0, lt=1)
    PROMOTION_RESAMPLES: int = Field(default=2000, ge=2000)
    PROMOTION_MIN_SOURCE_ROWS: int = Field(default=30, ge=1)
    PROMOTION_MAX_SOURCE_DROP: float = Field(default=0.05, ge=0)
    # The decision threshold every model carries: max_f1, or min_recall:R (0 < R <= 1).
    THRESHOLD_POLICY: str = "max_f1"

    # Prediction service.
    FASTAPI_HOST: str = "127.0.0.1"
    FASTAPI_PORT: int = 8800
    API_KEY: str = ""
    MODEL_POLL_SECONDS: float = 5.0
    MAX_BATCH_ROWS: int = 1000
    # Online predictions are buffered and written to the data lake this often.
    PREDICTION_LOG_FLUSH_SECONDS: float = 10.0
    # Where a shutdown with S3 unreachable leaves the unsent predictions; the next start sends
    # them (a volume in compose, so a restarted container finds them).
    PREDICTION_LOG_SPILL_OVERRIDE: str = Field(default="", alias="PREDICTION_LOG_SPILL_DIR")
    # Rows per chunk when the batch job scores a file: bounds its memory.
    BATCH_CHUNK_ROWS: int = 50_000
    # Who scores a batch file: this process ("in-process"), or Spark through MLflow's spark_udf
    # ("spark": mlplatform.spark_batch) at SPARK_MASTER_URL, with a driver of this much memory.
    BATCH_ENGINE: Literal["in-process", "spark"] = "in-process"
    SPARK_MASTER_URL: str = "local[*]"
    SPARK_DRIVER_MEMORY: str = "1g"
    # Signs prediction ids, so /feedback recognises the ids this platform issued (every replica
    # must share it).
    PREDICTION_ID_KEY: str = DEV_SECRETS["PREDICTION_ID_KEY"]
    MAX_FEEDBACK_ROWS: int = 1000
    # Monitoring (the `monitor` DAG): the window of predictions it judges, the least traffic and
    # the fewest outcomes it judges at all, and when the served model counts as degraded: a
    # drifted-feature share at or above DRIFT_SHARE_THRESHOLD, or live F1 below the model's test
    # F1 minus F1_DROP_MARGIN. Defaults from benchmarks/drift_figures.py (see the README).
    MONITOR_WINDOW_HOURS: float = 24.0
    MONITOR_MIN_ROWS: int = 100
    MONITOR_MIN_LABELLED: int = 100
    DRIFT_SHARE_THRESHOLD: float = 0.3
    F1_DROP_MARGIN: float = 0.1
    # How often the prediction service re-reads the latest monitoring summary for /metrics.
    MONITOR_REFRESH_SECONDS: float = 60.0
    # A request body over this many bytes gets a 413 before it is read whole or parsed.
    MAX_BODY_BYTES: int = 1_000_000
    # Every S3 and MLflow call is bounded, so a hung server becomes an error (and `degraded`).
    S3_TIMEOUT_SECONDS: float = 20.0
    MLFLOW_TIMEOUT_SECONDS: float = 10.0

    # Prometheus (optional in the local stack: it runs when the binary is installed).
    PROMETHEUS_PORT: int = 9090

    @model_validator(mode="after")
    def _refuse_weak_secrets_in_production(self) -> Settings:
        held = {n.strip() for n in self.SERVICE_SECRETS.split(",") if n.strip()} or set(SECRETS)
        if unknown := held - set(SECRETS):
            raise ConfigurationError(
                f"SERVICE_SECRETS names no secret: {', '.join(sorted(unknown))}"
            )
        for name in set(SECRETS) - held:
            setattr(self, name, "")
        if self.PLATFORM_ENV != "production":
            return self
        weak = [
            name
            for name in SECRETS
            if name in held
            and (
                getattr(self, name) == DEV_SECRETS.get(name)
                or len(getattr(self, name)) < MIN_SECRET_LENGTH
            )
        ]
        if weak:
            raise ConfigurationError(
                "PLATFORM_ENV=production refuses a dev-default, empty or short (under "
                f"{MIN_SECRET_LENGTH} characters) value of "
                + ", ".join(weak)
                + ": set your own values in the environment (see .env)."
            )
        return self

    # URLs derived from the host names and ports above.
    @computed_field  # type: ignore[prop-decorator]
    @property
    def s3_endpoint_url(self) -> str:
        return self.S3_ENDPOINT_URL_OVERRIDE or f"http://{self.MINIO_HOST}:{self.MINIO_PORT}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def mlflow_tracking_uri(self) -> str:
        return self.MLFLOW_TRACKING_URI_OVERRIDE or f"http://{self.MLFLOW_HOST}:{self.MLFLOW_PORT}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def airflow_url(self) -> str:
        return f"http://{self.AIRFLOW_HOST}:{self.AIRFLOW_PORT}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def fastapi_url(self) -> str:
        return f"http://{self.FASTAPI_HOST}:{self.FASTAPI_PORT}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def prometheus_url(self) -> str:
        return f"http://{self.BIND_HOST}:{self.PROMETHEUS_PORT}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def celery_broker_url(self) -> str:
        return (
            self.CELERY_BROKER_URL_OVERRIDE
            or f"redis://{self.CELERY_BROKER_HOST}:{self.CELERY_BROKER_PORT}/0"
        )

    @property
    def celery(self) -> bool:
        """Whether Airflow runs the CeleryExecutor (by its short name or its class path)."""
        return self.AIRFLOW_EXECUTOR.rsplit(".", 1)[-1] == "CeleryExecutor"

    @property
    def airflow_parallelism(self) -> int:
        """AIRFLOW_PARALLELISM, or when 0 every slot there is: workers x slots with Celery, the
        LocalExecutor's slots otherwise. A fixed 2 would leave added workers idle."""
        if self.AIRFLOW_PARALLELISM:
            return self.AIRFLOW_PARALLELISM
        return (self.AIRFLOW_WORKERS if self.celery else 1) * self.AIRFLOW_WORKER_CONCURRENCY

    @property
    def s3_credentials(self) -> tuple[str, str]:
        """The access key and secret this process signs S3 requests with."""
        if self.S3_IDENTITY == "serving":
            return self.SERVING_S3_ACCESS_KEY, self.SERVING_S3_SECRET_KEY
        return self.MINIO_ACCESS_KEY, self.MINIO_SECRET_ACCESS_KEY

    @property
    def prediction_log_spill_dir(self) -> Path:
        return Path(self.PREDICTION_LOG_SPILL_OVERRIDE or self.STACK_DIR / "prediction-log-spill")

    @property
    def airflow_home(self) -> Path:
        return Path(self.AIRFLOW_HOME_OVERRIDE or self.STACK_DIR / "airflow")

    def pg_url(self, database: str, driver: str = "psycopg2") -> str:
        # URL-encoded: a password such as `p@ss:w/rd%41#` must survive the URI.
        user, password = quote(self.PG_USER, safe=""), quote(self.PG_PASSWORD, safe="")
        return f"postgresql+{driver}://{user}:{password}@{self.PG_HOST}:{self.PG_PORT}/{database}"

    @property
    def airflow_db_url(self) -> str:
        return self.pg_url(self.PG_DATABASE)

    @property
    def mlflow_db_url(self) -> str:
        return self.pg_url(self.MLFLOW_PG_DATABASE)

    def service_env(self) -> dict[str, str]:
        """Environment derived from the settings that every service process gets.

        The entrypoints export it (`mlplatform env`), so compose and the local stack
        configure Airflow, MLflow and the S3 clients the same way.
        """
        return {
            "AWS_ACCESS_KEY_ID": self.s3_credentials[0],
            "AWS_SECRET_ACCESS_KEY": self.s3_credentials[1],
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint_url,
            "MLFLOW_TRACKING_URI": self.mlflow_tracking_uri,
            "MLFLOW_BACKEND_STORE_URI": self.mlflow_db_url,
            "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{self.MLFLOW_BUCKET_NAME}/",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            # Models are loaded as data by mlplatform.registry; MLflow's own loader never unpickles.
            "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.AIRFLOW_DAGS_FOLDER),
            "AIRFLOW__CORE__EXECUTOR": self.AIRFLOW_EXECUTOR,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": str(self.airflow_parallelism),
            # New DAGs run without a click: the retraining DAG must react to assets.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__FERNET_KEY": self.AIRFLOW_FERNET_KEY,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.airflow_url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.AIRFLOW_ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
                self.airflow_home / "simple_auth_manager_passwords.json"
            ),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.airflow_db_url,
            "AIRFLOW__API__HOST": self.BIND_HOST,
            "AIRFLOW__API__PORT": str(self.AIRFLOW_PORT),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": self.AIRFLOW_PUBLIC_URL or self.airflow_url,
            "AIRFLOW__API_AUTH__JWT_SECRET": self.AIRFLOW_JWT_SECRET,
            "AIRFLOW__API__SECRET_KEY": self.AIRFLOW_API_SECRET_KEY,
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": self.BIND_HOST,
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__CELERY__BROKER_URL": self.celery_broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.airflow_db_url,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.AIRFLOW_WORKER_CONCURRENCY),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "8793",
        }


@lru_cache
def get_settings() -> Settings:
    return Settings()
