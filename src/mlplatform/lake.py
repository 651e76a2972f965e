"""S3 data-lake I/O: one client factory, bucket bootstrap, atomic writes, Parquet.

Every write goes to a temporary key first and is then published by a server-side
copy, so a reader never sees half an object under its final name.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from mlplatform.settings import Settings, get_settings

if TYPE_CHECKING:
    import pandas as pd

TMP_PREFIX = "_tmp/"


def s3_client(settings: Settings | None = None) -> Any:
    s = settings or get_settings()
    return boto3.client(
        "s3",
        endpoint_url=s.s3_endpoint_url,
        aws_access_key_id=s.MINIO_ACCESS_KEY,
        aws_secret_access_key=s.MINIO_SECRET_ACCESS_KEY,
        region_name="us-east-1",
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


def ensure_buckets(settings: Settings | None = None, client: Any = None) -> list[str]:
    """Create the platform's buckets if missing. Idempotent; returns the ones created."""
    s = settings or get_settings()
    c = client or s3_client(s)
    existing = {b["Name"] for b in c.list_buckets().get("Buckets", [])}
    created = []
    for bucket in (s.DATA_REPO_BUCKET_NAME, s.MLFLOW_BUCKET_NAME):
        if bucket not in existing:
            c.create_bucket(Bucket=bucket)
            created.append(bucket)
    return created


def exists(bucket: str, key: str, client: Any = None) -> bool:
    c = client or s3_client()
    try:
        c.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def list_keys(bucket: str, prefix: str, client: Any = None) -> Iterator[str]:
    c = client or s3_client()
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"]


def get_bytes(bucket: str, key: str, client: Any = None) -> bytes:
    c = client or s3_client()
    body: bytes = c.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def put_bytes_atomic(
    bucket: str, key: str, data: bytes, client: Any = None, content_type: str = ""
) -> str:
    """Write to a temporary key, then publish under `key` by a server-side copy."""
    c = client or s3_client()
    tmp_key = f"{TMP_PREFIX}{uuid.uuid4().hex}/{key}"
    extra = {"ContentType": content_type} if content_type else {}
    c.put_object(Bucket=bucket, Key=tmp_key, Body=data, **extra)
    try:
        c.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": tmp_key})
    finally:
        c.delete_object(Bucket=bucket, Key=tmp_key)
    return key


def move(bucket: str, src_key: str, dst_key: str, client: Any = None) -> None:
    c = client or s3_client()
    c.copy_object(Bucket=bucket, Key=dst_key, CopySource={"Bucket": bucket, "Key": src_key})
    c.delete_object(Bucket=bucket, Key=src_key)


def write_parquet_atomic(df: pd.DataFrame, bucket: str, key: str, client: Any = None) -> str:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return put_bytes_atomic(bucket, key, buf.getvalue(), client, "application/vnd.apache.parquet")


def read_parquet(bucket: str, key: str, client: Any = None) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(get_bytes(bucket, key, client)))
