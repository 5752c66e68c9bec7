#!/bin/bash
# The entry point of tools/compose/postgres.Dockerfile: on first start,
# initdb as the official image does (the superuser POSTGRES_USER with
# POSTGRES_PASSWORD, scram-sha-256 for network clients, trust on the local
# socket, the database POSTGRES_DB), then postgres itself as PID 1 under
# the postgres user (SIGINT, the STOPSIGNAL, is its fast shutdown).
set -euo pipefail
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
data=${PGDATA:-/var/lib/postgresql/data}
as_postgres() { setpriv --reuid postgres --regid postgres --init-groups -- "$@"; }

install -d -o postgres -g postgres -m 0700 "$data"
install -d -o postgres -g postgres -m 2775 /var/run/postgresql
if [ ! -s "$data/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  as_postgres initdb -D "$data" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$data/pg_hba.conf"
  if [ "$db" != postgres ]; then
    as_postgres pg_ctl -D "$data" -o "-c listen_addresses=''" -w start >/dev/null
    as_postgres createdb -U "$user" "$db"
    as_postgres pg_ctl -D "$data" -m fast -w stop >/dev/null
  fi
fi
exec setpriv --reuid postgres --regid postgres --init-groups -- postgres -D "$data" -c listen_addresses='*'
