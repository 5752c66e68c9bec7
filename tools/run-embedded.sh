#!/usr/bin/env bash
# `make run`: starts build/moonkeep. Without DATABASE_URL (or POSTGRES_HOST)
# it first starts the embedded default, a private PostgreSQL cluster under
# var/pg that keeps its data across runs, and without MAIL_URL mail goes to
# var/outbox. The embedded JWT key is generated once into var/jwt_secret.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var
if [ -z "${DATABASE_URL:-}" ] && [ -z "${POSTGRES_HOST:-}" ]; then
  DATABASE_URL=$(tools/pg-cluster.sh start var/pg)
  export DATABASE_URL
  trap 'tools/pg-cluster.sh stop var/pg' EXIT
fi
if [ -z "${JWT_SECRET:-}" ]; then
  [ -s var/jwt_secret ] || (umask 077 && head -c 48 /dev/urandom | base64 -w0 > var/jwt_secret)
  JWT_SECRET=$(cat var/jwt_secret)
  export JWT_SECRET
fi
export OUTBOX_DIR=${OUTBOX_DIR:-var/outbox}
export PUBLIC_URL=${PUBLIC_URL:-http://localhost:${PORT:-5000}}
echo "moonkeep: serving on http://${HOST:-0.0.0.0}:${PORT:-5000} (Ctrl-C stops it)" >&2
# Not exec: the trap above stops the embedded database when the server ends.
export PID_FILE=${PID_FILE:-var/moonkeep.pid}
build/moonkeep serve &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' INT TERM
wait $server || true
wait $server 2>/dev/null || true
