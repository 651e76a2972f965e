"""Each real part of the local stack, reached the way the platform reaches it."""

from __future__ import annotations

import io
import uuid

import httpx
import numpy as np
import pandas as pd
import pytest
from botocore.exceptions import ClientError

from mlplatform import lake, registry
from mlplatform.airflow_client import AirflowClient
from mlplatform.monitoring.drift import REFERENCE_ARTIFACT
from mlplatform.settings import Settings


def test_postgres_role_owns_both_databases(stack: Settings) -> None:
    import psycopg2

    conn = psycopg2.connect(
        host=stack.PG_HOST,
        port=stack.PG_PORT,
        user=stack.PG_USER,
        password=stack.PG_PASSWORD,
        dbname=stack.PG_DATABASE,
    )
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname IN (%s, %s)",
            (stack.PG_DATABASE, stack.MLFLOW_PG_DATABASE),
        )
        owners = dict(cur.fetchall())
    conn.close()
    assert owners == {stack.PG_DATABASE: stack.PG_USER, stack.MLFLOW_PG_DATABASE: stack.PG_USER}


def test_postgres_refuses_a_wrong_password(stack: Settings) -> None:
    import psycopg2

    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(
            host=stack.PG_HOST,
            port=stack.PG_PORT,
            user=stack.PG_USER,
            password="not-the-password",
            dbname=stack.PG_DATABASE,
        )


def test_s3_put_get_list_delete(stack: Settings) -> None:
    data = lake.Lake(stack)
    prefix = f"tests/{uuid.uuid4().hex}/"
    data.put_atomic(prefix + "a.txt", b"alpha")
    data.client.put_object(Bucket=data.bucket, Key=prefix + "b.txt", Body=b"beta")
    assert data.get(prefix + "a.txt") == b"alpha"
    assert sorted(data.list(prefix)) == [prefix + "a.txt", prefix + "b.txt"]
    # The atomic write left no temporary object behind.
    assert not list(data.list(lake.TMP_PREFIX))
    data.delete(prefix + "a.txt")
    assert not data.exists(prefix + "a.txt")
    assert data.exists(prefix + "b.txt")


def test_s3_buckets_exist(stack: Settings) -> None:
    names = {b["Name"] for b in lake.s3_client(stack).list_buckets()["Buckets"]}
    assert {stack.DATA_REPO_BUCKET_NAME, stack.MLFLOW_BUCKET_NAME} <= names


def test_s3_multipart_upload(stack: Settings) -> None:
    from boto3.s3.transfer import TransferConfig

    s3 = lake.s3_client(stack)
    key = f"tests/{uuid.uuid4().hex}/big.bin"
    payload = np.random.default_rng(1).bytes(12 * 1024 * 1024)
    config = TransferConfig(
        multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024
    )
    s3.upload_fileobj(io.BytesIO(payload), stack.DATA_REPO_BUCKET_NAME, key, Config=config)
    head = s3.head_object(Bucket=stack.DATA_REPO_BUCKET_NAME, Key=key)
    assert head["ContentLength"] == len(payload)
    assert "-" in head["ETag"]  # a multipart ETag: "<md5 of parts>-<part count>"
    assert lake.Lake(stack, s3).get(key) == payload


def test_s3_refuses_a_wrong_key(stack: Settings) -> None:
    wrong = stack.model_copy(update={"MINIO_SECRET_ACCESS_KEY": "wrong-secret"})
    with pytest.raises(ClientError) as err:
        lake.s3_client(wrong).list_buckets()
    assert err.value.response["Error"]["Code"] in (
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AccessDenied",
    )


def test_the_serving_identity_writes_only_its_own_prefixes(stack: Settings) -> None:
    """The prediction service signs as its own S3 identity: it reads the data bucket and
    publishes its log and feedback, and the S3 server refuses it everything else."""
    from mlplatform import store

    serving = stack.model_copy(update={"S3_IDENTITY": "serving"})
    own = lake.Lake(serving, lake.s3_client(serving, attempts=1))
    platform = lake.Lake(stack)
    run = uuid.uuid4().hex
    platform.put_atomic(f"tests/{run}/seen.txt", b"platform")
    assert own.get(f"tests/{run}/seen.txt") == b"platform"
    assert list(own.list(f"tests/{run}/")) == [f"tests/{run}/seen.txt"]
    for prefix in (store.PREDICTION_LOG, store.FEEDBACK_RECEIVED):
        key = f"{prefix}date=2000-01-01/{run}.parquet"
        own.put_atomic(key, b"owned")  # through a temporary key, published by a copy
        assert platform.get(key) == b"owned"
        platform.delete(key)
    for key in (f"tests/{run}/seen.txt", store.MANIFEST, f"{store.CLEAN}{run}.parquet"):
        with pytest.raises(ClientError) as err:
            own.put_atomic(key, b"not yours")
        assert err.value.response["Error"]["Code"] == "AccessDenied", key
    with pytest.raises(ClientError):
        own.delete(f"tests/{run}/seen.txt")
    assert platform.get(f"tests/{run}/seen.txt") == b"platform"
    with pytest.raises(ClientError):
        lake.s3_client(serving).create_bucket(Bucket=f"not-yours-{run[:8]}")


def test_the_prediction_service_runs_as_the_serving_identity(stack: Settings) -> None:
    from pathlib import Path

    from mlplatform.localstack import LocalStack

    pid = next(pid for name, _, pid, _ in LocalStack(stack).status() if name == "fastapi")
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"S3_IDENTITY=serving" in environ
    assert f"SERVING_S3_ACCESS_KEY={stack.SERVING_S3_ACCESS_KEY}".encode() in environ
    config = stack.STACK_DIR / "s3" / "identities.json"
    assert config.stat().st_mode & 0o077 == 0, "the S3 identities file is readable by others"


def test_mlflow_logs_registers_and_serves_the_champion(stack: Settings) -> None:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from mlplatform.features import build_pipeline
    from mlplatform.synthetic import synthetic_features

    # A model name of its own: the platform's registered model stays free for the pipelines.
    stack = stack.model_copy(
        update={"REGISTERED_MODEL_NAME": f"integration-{uuid.uuid4().hex[:8]}"}
    )

    X = synthetic_features(60)
    y = (X["age"] > X["age"].median()).astype(int)
    pipeline = build_pipeline(LogisticRegression()).fit(X, y)
    registry.configure(stack)
    mlflow.set_experiment(f"integration-{uuid.uuid4().hex[:8]}")
    with mlflow.start_run() as run:
        mlflow.log_metric("train_accuracy", float((pipeline.predict(X) == y).mean()))
        uri = registry.log_pipeline(pipeline, X.head(3))
        registry.log_frame(X, REFERENCE_ARTIFACT)
    version = registry.register(uri, run.info.run_id, {"purpose": "integration-test"}, stack)
    assert registry.register(uri, run.info.run_id, {}, stack).version == version.version
    registry.promote(version.version, stack)

    champion = registry.get_champion(stack)
    assert champion is not None and champion.version == version.version
    assert champion.tags["purpose"] == "integration-test"
    loaded = registry.load_pipeline(
        registry.model_uri(stack.REGISTERED_MODEL_NAME, alias=registry.CHAMPION)
    )
    np.testing.assert_array_equal(loaded.predict(X), pipeline.predict(X))
    assert mlflow.get_run(run.info.run_id).data.metrics["train_accuracy"] > 0.5
    pd.testing.assert_frame_equal(registry.logged_frame(run.info.run_id, REFERENCE_ARTIFACT), X)
    assert registry.logged_frame(run.info.run_id, "monitoring/absent.parquet") is None
    # Artifacts went through the server's proxy into the mlflow bucket.
    artifacts = lake.s3_client(stack).list_objects_v2(Bucket=stack.MLFLOW_BUCKET_NAME)
    assert artifacts.get("KeyCount", 0) > 0


def test_airflow_runs_a_dag_triggered_over_rest(stack: Settings) -> None:
    client = AirflowClient(stack)
    run_id, state = client.trigger_and_wait("platform_smoke", timeout=300)
    assert state == "success", client.task_states("platform_smoke", run_id)
    body = lake.Lake(stack).get(f"smoke/{run_id}.json")
    assert f'"run_id": "{run_id}"' in body.decode()


def test_airflow_refuses_a_wrong_login(stack: Settings) -> None:
    resp = httpx.post(
        f"{stack.airflow_url}/auth/token",
        json={"username": stack.AIRFLOW_ADMIN_USER, "password": "wrong"},
    )
    assert resp.status_code in (401, 403)


def test_fastapi_health(stack: Settings) -> None:
    resp = httpx.get(f"{stack.fastapi_url}/health", timeout=5)
    assert resp.status_code == 200
