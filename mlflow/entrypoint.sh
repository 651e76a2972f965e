#!/usr/bin/env bash
# MLflow tracking server: PostgreSQL backend store, artifacts proxied to S3, so clients
# need only MLFLOW_TRACKING_URI. One worker and no job runner keep it near 300 MB.
set -euo pipefail
# Assigned first: `set -e` ignores a failure inside `eval "$(...)"`, and a refused production
# start would then run on defaults.
exports="$(mlplatform env)"
eval "$exports"
if [ "$PLATFORM_ENV" = production ] && [ -z "${MLFLOW_AUTH_CONFIG_PATH:-}" ]; then
  echo "PLATFORM_ENV=production needs MLflow's basic-auth app: set MLFLOW_AUTH_CONFIG_PATH" >&2
  exit 1
fi
# The database may be missing on a reused PostgreSQL volume: create it, every start.
python -m mlplatform.dbinit
# Secrets stay off the command line: `mlflow server` reads the backend store URI (with its
# password) from MLFLOW_BACKEND_STORE_URI, exported above.
args=(--host "$BIND_HOST" --port "$MLFLOW_PORT" --workers 1 --serve-artifacts
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" --allowed-hosts "$MLFLOW_ALLOWED_HOSTS")
# With an auth config (compose and production set one), the basic-auth app: every request needs a login,
# and the admin is created on first start from the clients' credentials.
if [ -n "${MLFLOW_AUTH_CONFIG_PATH:-}" ]; then
  export MLFLOW_AUTH_ADMIN_USERNAME="$MLFLOW_TRACKING_USERNAME"
  export MLFLOW_AUTH_ADMIN_PASSWORD="$MLFLOW_TRACKING_PASSWORD"
  args+=(--app-name basic-auth)
fi
exec mlflow server "${args[@]}"
