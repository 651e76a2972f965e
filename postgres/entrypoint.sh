#!/usr/bin/env bash
# PostgreSQL of the local stack: initdb on first start, then the platform's databases,
# then the server in the foreground. Needs no Python: it runs as the unprivileged
# `postgres` user when the stack is started by root. PG_BIN names the binaries (the stack
# passes the system's or the pgserver wheel's). Every connection needs the password, and
# the socket's folder is private to this user, so no other local user gets in.
set -euo pipefail
: "${PGDATA:?PGDATA must name the data directory}"
: "${PG_USER:?}" "${PG_PASSWORD:?}"
PG_PORT="${PG_PORT:-5432}"
BIND_HOST="${BIND_HOST:-127.0.0.1}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -z "${PG_BIN:-}" ]; then
  if command -v initdb >/dev/null 2>&1; then
    PG_BIN="$(dirname "$(readlink -f "$(command -v initdb)")")"
  else
    PG_BIN="$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)")"
  fi
fi
[ -x "$PG_BIN/postgres" ] || { echo "PostgreSQL server binaries not found: uv sync (pgserver) or apt-get install -y postgresql" >&2; exit 1; }
export PG_BIN
socket_dir="${PG_SOCKET_DIR:-$(dirname "$PGDATA")/socket}"
mkdir -p "$socket_dir"
chmod 0700 "$socket_dir"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp "$(dirname "$PGDATA")/pwfile.XXXXXX")"
  printf '%s' "$PG_PASSWORD" >"$pwfile"
  "$PG_BIN/initdb" -D "$PGDATA" -U "$PG_USER" -E UTF8 --auth=scram-sha-256 \
    --pwfile="$pwfile" >/dev/null
  rm -f "$pwfile"
fi
# Rewritten on every start, so a data folder made by an older version (trust) is fixed too.
cat >"$PGDATA/pg_hba.conf" <<'HBA'
# Written by postgres/entrypoint.sh on every start: a password for every connection.
local all all scram-sha-256
host  all all all scram-sha-256
HBA
socket_opts="-k $socket_dir -c unix_socket_permissions=0700"
# Create missing databases on a socket-only server, as the official image's init does;
# every start, so an interrupted first start is completed.
"$PG_BIN/pg_ctl" -D "$PGDATA" -o "-c listen_addresses='' $socket_opts" -w start >/dev/null
trap '"$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null' EXIT
PGHOST="$socket_dir" PGPASSWORD="$PG_PASSWORD" bash "$here/init-databases.sh"
"$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
trap - EXIT
exec "$PG_BIN/postgres" -D "$PGDATA" -c listen_addresses="$BIND_HOST" -p "$PG_PORT" \
  -k "$socket_dir" -c unix_socket_permissions=0700
