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
from mlplatform.dataset import SPEC
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
    s3 = lake.s3_client(stack)
    bucket = stack.DATA_REPO_BUCKET_NAME
    prefix = f"tests/{uuid.uuid4().hex}/"
    lake.put_bytes_atomic(bucket, prefix + "a.txt", b"alpha", s3)
    s3.put_object(Bucket=bucket, Key=prefix + "b.txt", Body=b"beta")
    assert lake.get_bytes(bucket, prefix + "a.txt", s3) == b"alpha"
    assert sorted(lake.list_keys(bucket, prefix, s3)) == [prefix + "a.txt", prefix + "b.txt"]
    # The atomic write left no temporary object behind.
    assert not list(lake.list_keys(bucket, lake.TMP_PREFIX, s3))
    s3.delete_object(Bucket=bucket, Key=prefix + "a.txt")
    assert not lake.exists(bucket, prefix + "a.txt", s3)
    assert lake.exists(bucket, prefix + "b.txt", s3)


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
    assert lake.get_bytes(stack.DATA_REPO_BUCKET_NAME, key, s3) == payload


def test_s3_refuses_a_wrong_key(stack: Settings) -> None:
    wrong = stack.model_copy(update={"MINIO_SECRET_ACCESS_KEY": "wrong-secret"})
    with pytest.raises(ClientError) as err:
        lake.s3_client(wrong).list_buckets()
    assert err.value.response["Error"]["Code"] in (
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AccessDenied",
    )


def _synthetic_features(n: int, seed: int = 0) -> pd.DataFrame:
    """Rows drawn inside SPEC's ranges and codes; enough to exercise the registry."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f.name: rng.uniform(f.minimum, f.maximum, n).round(1) for f in SPEC.numeric})
    for feature in SPEC.categorical:
        df[feature.name] = rng.choice(sorted(feature.codes), n)
    return df[list(SPEC.feature_names)]


def test_mlflow_logs_registers_and_serves_the_champion(stack: Settings) -> None:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from mlplatform.features import build_pipeline

    # A model name of its own: the platform's registered model stays free for the pipelines.
    stack = stack.model_copy(
        update={"REGISTERED_MODEL_NAME": f"integration-{uuid.uuid4().hex[:8]}"}
    )

    X = _synthetic_features(60)
    y = (X["age"] > X["age"].median()).astype(int)
    pipeline = build_pipeline(LogisticRegression()).fit(X, y)
    registry.configure(stack)
    mlflow.set_experiment(f"integration-{uuid.uuid4().hex[:8]}")
    with mlflow.start_run() as run:
        mlflow.log_metric("train_accuracy", float((pipeline.predict(X) == y).mean()))
        info = registry.log_pipeline(pipeline, X.head(3))
    version = registry.register(info, {"purpose": "integration-test"}, stack)
    registry.promote(version.version, stack)

    champion = registry.get_champion(stack)
    assert champion is not None and champion.version == version.version
    assert champion.tags["purpose"] == "integration-test"
    loaded = registry.load_pipeline(registry.model_uri(settings=stack))
    np.testing.assert_array_equal(loaded.predict(X), pipeline.predict(X))
    assert mlflow.get_run(run.info.run_id).data.metrics["train_accuracy"] > 0.5
    # Artifacts went through the server's proxy into the mlflow bucket.
    assert any(lake.list_keys(stack.MLFLOW_BUCKET_NAME, "", lake.s3_client(stack)))


def test_airflow_runs_a_dag_triggered_over_rest(stack: Settings) -> None:
    client = AirflowClient(stack)
    run_id, state = client.trigger_and_wait("platform_smoke", timeout=300)
    assert state == "success", client.task_states("platform_smoke", run_id)
    body = lake.get_bytes(
        stack.DATA_REPO_BUCKET_NAME, f"smoke/{run_id}.json", lake.s3_client(stack)
    )
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
