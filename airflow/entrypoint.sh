#!/usr/bin/env bash
# Airflow 3, one component per process: init | api-server | scheduler | dag-processor |
# triggerer | worker. The local stack and the compose services run this same script.
set -euo pipefail
# Assigned first: `set -e` ignores a failure inside `eval "$(...)"`, and a refused production
# start would then run on defaults.
exports="$(mlplatform env)"
eval "$exports"
mkdir -p "$AIRFLOW_HOME"
preload="$(cd "$(dirname "$0")" && pwd)/preload${PYTHONPATH:+:$PYTHONPATH}"
component="${1:?usage: entrypoint.sh init|api-server|scheduler|dag-processor|triggerer|worker}"
case "$component" in
  init)
    airflow db migrate
    mlplatform airflow-users
    ;;
  api-server)
    mlplatform airflow-users
    exec airflow api-server --port "$AIRFLOW_PORT" --host "$BIND_HOST"
    ;;
  # The log servers would bind 0.0.0.0; the api-server reads task logs from disk instead.
  # Tasks are forked from the scheduler (LocalExecutor) and the workers (Celery): they import
  # the tasks' heavy modules once (preload/airflow_local_settings.py), the others never do.
  scheduler) PYTHONPATH="$preload" exec airflow scheduler --skip-serve-logs ;;
  triggerer) exec airflow triggerer --skip-serve-logs ;;
  dag-processor) exec airflow dag-processor ;;
  # Compose: one worker per container. The local stack runs several on one machine and names
  # each (AIRFLOW_WORKER_NAME, its Celery node name); they skip the log server, which would bind
  # 0.0.0.0 on one shared port: the api-server reads their logs from the shared folder.
  worker)
    if [ -n "${AIRFLOW_WORKER_NAME:-}" ]; then
      PYTHONPATH="$preload" exec airflow celery worker --celery-hostname "$AIRFLOW_WORKER_NAME" --skip-serve-logs
    fi
    PYTHONPATH="$preload" exec airflow celery worker
    ;;
  *) echo "unknown Airflow component: $component" >&2; exit 2 ;;
esac
