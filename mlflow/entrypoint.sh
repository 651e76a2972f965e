#!/usr/bin/env bash
# MLflow tracking server: PostgreSQL backend store, artifacts proxied to S3, so clients
# need only MLFLOW_TRACKING_URI. One worker and no job runner keep it near 300 MB.
set -euo pipefail
eval "$(mlplatform env)"
exec mlflow server --host "$BIND_HOST" --port "$MLFLOW_PORT" --workers 1 \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --serve-artifacts --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --allowed-hosts "$MLFLOW_ALLOWED_HOSTS"
