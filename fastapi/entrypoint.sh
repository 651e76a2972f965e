#!/usr/bin/env bash
# Prediction service under uvicorn. One worker: see docs on the multi-worker Nagle issue.
set -euo pipefail
eval "$(mlplatform env)"
exec uvicorn --factory mlplatform.serving.app:app_factory --host "$BIND_HOST" --port "$FASTAPI_PORT" \
  --workers 1 --no-access-log
