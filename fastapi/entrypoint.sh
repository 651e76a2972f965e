#!/usr/bin/env bash
# Prediction service under uvicorn. FASTAPI_WORKERS workers (default 1, see the README's
# benchmark); the protocol sets TCP_NODELAY on accepted sockets, which uvicorn's shared socket
# of several workers leaves off (uvicorn#3149, ~40 ms per kept-alive request).
set -euo pipefail
# Assigned first: `set -e` ignores a failure inside `eval "$(...)"`, and a refused production
# start would then run on defaults.
exports="$(mlplatform env)"
eval "$exports"
exec uvicorn --factory mlplatform.serving.app:app_factory --host "$BIND_HOST" --port "$FASTAPI_PORT" \
  --workers "${FASTAPI_WORKERS:-1}" --http mlplatform.serving.nodelay:NoDelayHttpTools --no-access-log
