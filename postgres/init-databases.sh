#!/usr/bin/env bash
# Creates the Airflow and MLflow databases, owned by the platform role. Idempotent.
# The official image runs it from /docker-entrypoint-initdb.d; the local stack from entrypoint.sh.
set -euo pipefail
role="${POSTGRES_USER:-${PG_USER:?PG_USER is not set}}"
psql_cmd=("${PG_BIN:+$PG_BIN/}psql" -v ON_ERROR_STOP=1 --username "$role" --dbname postgres -tA)
for db in "${PG_DATABASE:-airflow}" "${MLFLOW_PG_DATABASE:-mlflow_db}"; do
  if [ "$("${psql_cmd[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != "1" ]; then
    "${psql_cmd[@]}" -c "CREATE DATABASE \"$db\" OWNER \"$role\"" >/dev/null
    echo "created database $db owned by $role"
  fi
done
