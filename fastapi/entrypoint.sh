#!/usr/bin/env bash
# Prediction service under uvicorn. One worker: see docs on the multi-worker Nagle issue.
set -euo pipefail
# Assigned first: `set -e` ignores a failure inside `eval "$(...)"`, and a refused production
# start would then run on defaults.
exports="$(mlplatform env)"
eval "$exports"
exec uvicorn --factory mlplatform.serving.app:app_factory --host "$BIND_HOST" --port "$FASTAPI_PORT" \
  --workers 1 --no-access-log
