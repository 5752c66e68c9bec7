#!/usr/bin/env bash
# A private PostgreSQL cluster in a folder, reachable only through a unix
# socket in that folder: the embedded default of `make run` and the test
# database of `make test`.
#
#   tools/pg-cluster.sh start DIR   initdb on first use, then start; prints DATABASE_URL
#   tools/pg-cluster.sh stop DIR    stop it (fast shutdown)
#   tools/pg-cluster.sh url DIR     print the DATABASE_URL
#
# initdb and postgres refuse to run as root: as root, the cluster runs as
# Debian's `postgres` user (runuser), which owns DIR.
set -euo pipefail

cmd=${1:?usage: pg-cluster.sh start|stop|url DIR}
dir=${2:?usage: pg-cluster.sh start|stop|url DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
bindir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/pg_ctl" ] || { echo "pg-cluster: PostgreSQL server binaries not found" >&2; exit 1; }
port=5432
dbname=moonkeep

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

url() {
  # libpq URL with the socket folder percent-encoded as the host
  local enc
  enc=$(printf '%s' "$dir" | sed -e 's|%|%25|g' -e 's|/|%2F|g' -e 's| |%20|g')
  echo "postgresql://${enc}:${port}/${dbname}?user=$(as_owner id -un)"
}

case "$cmd" in
  start)
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; fi
    chmod 700 "$dir"
    if ! as_owner test -w "$dir"; then
      echo "pg-cluster: the $(as_owner id -un) user cannot reach $dir (is a parent folder private?);" \
           "move the checkout or set DATABASE_URL" >&2
      exit 1
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bindir/initdb" -D "$dir/data" -A trust -E UTF8 --locale=C.UTF-8 -U "$(as_owner id -un)" >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if ! as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-c listen_addresses='' -c unix_socket_directories='$dir' -p $port -c max_connections=200 -c fsync=${PG_FSYNC:-on}" \
        start >/dev/null || { tail -n 20 "$dir/postgres.log" >&2; exit 1; }
    fi
    if ! as_owner "$bindir/psql" -h "$dir" -p "$port" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$dbname'" | grep -q 1; then
      as_owner "$bindir/createdb" -h "$dir" -p "$port" "$dbname"
    fi
    url
    ;;
  stop)
    if [ -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
  url)
    url
    ;;
  *)
    echo "usage: pg-cluster.sh start|stop|url DIR" >&2
    exit 2
    ;;
esac
