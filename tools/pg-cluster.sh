#!/usr/bin/env bash
# A private PostgreSQL cluster in a folder, reachable only through a unix
# socket in that folder: the embedded default of `make run` and the test
# database of `make test`.
#
#   tools/pg-cluster.sh start DIR   initdb on first use, then start; prints DATABASE_URL
#   tools/pg-cluster.sh stop DIR    stop it (fast shutdown)
#   tools/pg-cluster.sh url DIR     print the DATABASE_URL
#
# PG_TCP_PORT=N (start): also listen on 127.0.0.1:N, for clients that cannot
# reach the socket (a container, under another uid); url then names that.
#
# initdb and postgres refuse to run as root: as root, the cluster runs as
# Debian's `postgres` user (runuser), which owns DIR. Where that user cannot
# reach DIR (a checkout under root's home or a `mktemp -d` folder: mode 700),
# a new cluster lives in /var/lib/moonkeep/pg/HASH (HASH: of DIR's path) and
# DIR becomes a symbolic link to it.
set -euo pipefail

cmd=${1:?usage: pg-cluster.sh start|stop|url DIR}
dir=${2:?usage: pg-cluster.sh start|stop|url DIR}
# absolute: the postgres user must be checked on the whole path, not from
# our working folder (which it inherits, whatever the parents' modes)
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
relocated_root=/var/lib/moonkeep/pg
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
  if [ -s "$dir/tcp_port" ]; then
    echo "postgresql://127.0.0.1:$(cat "$dir/tcp_port")/${dbname}?user=$(as_owner id -un)"
    return
  fi
  # libpq URL with the socket folder percent-encoded as the host
  local enc
  enc=$(printf '%s' "$dir" | sed -e 's|%|%25|g' -e 's|/|%2F|g' -e 's| |%20|g')
  echo "postgresql://${enc}:${port}/${dbname}?user=$(as_owner id -un)"
}

# As root: when the postgres user cannot reach a new (missing or empty) DIR,
# move it to the relocated root and leave a link in its place.
relocate_if_private() {
  [ "$(id -u)" -eq 0 ] && [ ! -L "$dir" ] || return 0
  mkdir -p "$dir"
  chown postgres:postgres "$dir"
  as_owner test -w "$dir" && return 0
  if [ -n "$(ls -A "$dir")" ]; then
    echo "pg-cluster: the postgres user cannot reach $dir, which holds data already" \
         "(is a parent folder private?); move it or set DATABASE_URL" >&2
    exit 1
  fi
  local physical
  physical="$relocated_root/$(printf '%s' "$(cd "$dir" && pwd -P)" | sha256sum | cut -c1-16)"
  install -d -m 755 "$relocated_root"
  install -d -m 700 -o postgres -g postgres "$physical"
  rmdir "$dir"
  ln -s "$physical" "$dir"
}

case "$cmd" in
  start)
    relocate_if_private
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; fi
    chmod 700 "$dir"
    if ! as_owner test -w "$dir"; then
      echo "pg-cluster: the $(as_owner id -un) user cannot reach $dir (is a parent folder private?);" \
           "move it or set DATABASE_URL" >&2
      exit 1
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bindir/initdb" -D "$dir/data" -A trust -E UTF8 --locale=C.UTF-8 -U "$(as_owner id -un)" >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    listen=""
    if [ -n "${PG_TCP_PORT:-}" ]; then
      port=$PG_TCP_PORT listen=127.0.0.1
      echo "$port" >"$dir/tcp_port"
    else
      rm -f "$dir/tcp_port"
    fi
    if ! as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-c listen_addresses='$listen' -c unix_socket_directories='$dir' -p $port -c max_connections=200 -c fsync=${PG_FSYNC:-on}" \
        start >/dev/null || { tail -n 20 "$dir/postgres.log" >&2; exit 1; }
    fi
    if ! as_owner "$bindir/psql" -h "$dir" -p "$port" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$dbname'" | grep -q 1; then
      as_owner "$bindir/createdb" -h "$dir" -p "$port" "$dbname"
    fi
    url
    ;;
  stop)
    [ -d "$dir" ] || exit 0
    dir=$(cd "$dir" && pwd -P)
    if [ -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
  url)
    dir=$(cd "$dir" && pwd -P)
    url
    ;;
  *)
    echo "usage: pg-cluster.sh start|stop|url DIR" >&2
    exit 2
    ;;
esac
