# shellcheck shell=bash
# bench/lib.sh — what bench/run.sh (the main table) and bench/scale.sh (the
# scale table) share: settings, the temporary folder and its cleanup, a
# private PostgreSQL, moonkeep started and an admin logged in through the
# API, and wrk slices. Sourced, never run; the caller has set -euo pipefail
# and is at the repository's root.
#
# Settings (environment), read here for both:
#   WORKERS (2), DB_POOL_SIZE (4), BENCH_SLICE (2), BENCH_ROUNDS (3),
#   BENCH_CONNECTIONS (50), BENCH_THREADS (2: wrk threads, pgbench -j),
#   BENCH_PG_FSYNC (on), BENCH_BIN (build-release/moonkeep),
#   BENCH_KEEP (1: keep the temp folder),
#   BENCH_SMOKE (1: a quick check that everything runs, numbers not to be
#   read: 1 s slices, 1 round, 1 run, unless those are set too).

root=$(pwd)
BENCH_DIR="$root/bench"
export BENCH_DIR

if [ "${BENCH_SMOKE:-0}" = 1 ]; then
  : "${BENCH_SLICE:=1}" "${BENCH_ROUNDS:=1}" "${BENCH_RUNS:=1}"
fi
BIN=${BENCH_BIN:-build-release/moonkeep}
WORKERS=${WORKERS:-2}
DB_POOL_SIZE=${DB_POOL_SIZE:-4}
SLICE=${BENCH_SLICE:-2}
ROUNDS=${BENCH_ROUNDS:-3}
# (DURATION, CONNS, POOL_TOTAL: for the scripts that source this file)
# shellcheck disable=SC2034
DURATION=$((SLICE * ROUNDS))
# shellcheck disable=SC2034
CONNS=${BENCH_CONNECTIONS:-50}
THREADS=${BENCH_THREADS:-2}
# shellcheck disable=SC2034
POOL_TOTAL=$((DB_POOL_SIZE * WORKERS))

[ -x "$BIN" ] || { echo "bench: $BIN not found (make bench builds it)" >&2; exit 1; }
pgbin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
[ -x "$pgbin/pgbench" ] || { echo "bench: pgbench not found under /usr/lib/postgresql" >&2; exit 1; }

say() { printf 'bench: %s\n' "$*" >&2; }

need_tools() { # tool...
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (make deps installs it)" >&2; exit 1; }
  done
}

ports_free() { # port...
  local p
  for p in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "bench: port $p is in use (set BENCH_PORT)" >&2
      exit 1
    fi
  done
}

# ---- the temporary folder, and stopping what we started -------------------------
tmp=$(mktemp -d /tmp/mkbench.XXXXXX)
chmod 755 "$tmp"
results="$tmp/results.jsonl"
: >"$results"
started=()   # pids of the servers we started, stopped in reverse order
ok=0
LOGS=("$tmp/moonkeep.log" "$tmp/pg/postgres.log")

fact() { printf '%s\n' "$1" >>"$results"; }

stop_pid() { # pid: SIGTERM, then SIGKILL after 10 s
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local i f
  trap - EXIT INT TERM
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do stop_pid "${started[$i]}"; done
  tools/pg-cluster.sh stop "$tmp/pg" >/dev/null 2>&1 || true
  if [ "$ok" -ne 1 ]; then
    echo "bench: failed; last lines of the logs in $tmp:" >&2
    for f in "${LOGS[@]}"; do
      [ -f "$f" ] && { echo "== $f" >&2; tail -n 15 "$f" >&2; }
    done
  fi
  if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$ok" -ne 1 ]; then
    echo "bench: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() { # url: up to 20 s
  local i
  for i in $(seq 200); do
    curl -s -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.1
  done
  echo "bench: $1 did not answer" >&2
  return 1
}

# ---- PostgreSQL ---------------------------------------------------------------------
# Starts the private cluster in $tmp/pg and migrates it: DATABASE_URL, and
# pg=(psql/pgbench connection flags).
start_pg() {
  say "starting PostgreSQL in $tmp/pg"
  DATABASE_URL=$(PG_FSYNC=${BENCH_PG_FSYNC:-on} tools/pg-cluster.sh start "$tmp/pg")
  export DATABASE_URL
  local pguser=postgres
  [ "$(id -u)" -eq 0 ] || pguser=$(id -un)
  pg=(-h "$tmp/pg" -p 5432 -U "$pguser")
  "$BIN" migrate >"$tmp/migrate.log" 2>&1 || { cat "$tmp/migrate.log" >&2; exit 1; }
}

psql_do() { # psql arguments...: on database $PGDB (moonkeep), stopping at the first error
  "$pgbin/psql" "${pg[@]}" -d "${PGDB:-moonkeep}" -qX -v ON_ERROR_STOP=1 "$@"
}

# ---- moonkeep ---------------------------------------------------------------------
# Starts moonkeep on port $1 (WORKERS, DB_POOL_SIZE) on DATABASE_URL, its
# files named after $2 (moonkeep: $tmp/moonkeep.log, $tmp/moonkeep-outbox):
# mk (the master's pid), base (its URL), mk_outbox, and BENCH_JWT_SECRET
# (made by the first call, the same for the others: their cursors are
# alike). A copy named mk-bench: its processes are
# told apart from any other moonkeep on the machine (ps, perf, and whatever
# stops development servers by name). The per-client hashing budget is off
# (CLIENT_HASH_BUDGET_PER_MIN=0): every login comes from 127.0.0.1, and the
# bench measures hashing, not that limit.
start_moonkeep() {
  local port=$1 name=${2:-moonkeep}
  say "starting moonkeep $name ($WORKERS workers, DB_POOL_SIZE=$DB_POOL_SIZE)"
  mkdir -p "$tmp/bin"
  [ -x "$tmp/bin/mk-bench" ] || cp "$BIN" "$tmp/bin/mk-bench"
  : "${BENCH_JWT_SECRET:=$(head -c 48 /dev/urandom | base64 -w0)}"
  mk_outbox="$tmp/$name-outbox"
  env JWT_SECRET="$BENCH_JWT_SECRET" \
    HOST=127.0.0.1 PORT="$port" WORKERS="$WORKERS" DB_POOL_SIZE="$DB_POOL_SIZE" \
    OUTBOX_DIR="$mk_outbox" PUBLIC_URL="http://127.0.0.1:$port" PID_FILE="$tmp/$name.pid" \
    ACCESS_TOKEN_TTL_S=3600 SHUTDOWN_GRACE_S=2 MIGRATE_ON_START=false CLIENT_HASH_BUDGET_PER_MIN=0 \
    "$tmp/bin/mk-bench" serve >"$tmp/$name.log" 2>&1 &
  mk=$!
  started+=("$mk")
  base="http://127.0.0.1:$port"
  wait_http "$base/healthz"
  sleep 0.5
}

# Registers, confirms (the token of the outbox mail; through SQL if none is
# found) and logs in the bench admin on the moonkeep last started:
# BENCH_TOKEN, BENCH_EMAIL, BENCH_PASSWORD exported for the wrk scripts.
login_bench_admin() {
  local email="bench-admin@bench.test" password status token="" i f eml login_body access
  say "registering, confirming and logging in the bench admin"
  # one password for every moonkeep the script starts (the wrk scripts read one)
  password=${BENCH_PASSWORD:-"bench password $(head -c 6 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9')"}
  status=$(curl -s -o "$tmp/register.json" -w '%{http_code}' -X POST "$base/auth/register" \
    -H 'Content-Type: application/json' \
    -d "{\"email\":\"$email\",\"name\":\"benchadmin\",\"password\":\"$password\"}")
  [ "$status" = 201 ] || { echo "bench: register answered $status: $(cat "$tmp/register.json")" >&2; exit 1; }
  for i in $(seq 50); do
    eml=""
    for f in "$mk_outbox"/*.eml; do [ -e "$f" ] && { eml=$f; break; }; done
    if [ -n "$eml" ]; then
      # quoted-printable: join soft line breaks, then take the token of the link
      token=$(sed -e ':a' -e '/=\r\?$/{N;s/=\r\?\n//;ba' -e '}' "$eml" | sed 's/=3D/=/g' \
        | grep -o 'auth/confirm?token=[A-Za-z0-9_-]*' | head -n 1 | cut -d= -f2 || true)
      [ -n "$token" ] && break
    fi
    sleep 0.1
  done
  if [ -n "$token" ]; then
    status=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/json' "$base/auth/confirm?token=$token")
    [ "$status" = 200 ] || { echo "bench: confirm answered $status" >&2; exit 1; }
  else
    say "no confirmation link in the outbox; confirming through SQL"
    psql_do -c "UPDATE admins SET confirmed = true WHERE email = '$email'" >/dev/null
  fi
  login_body="{\"email\":\"$email\",\"password\":\"$password\"}"
  access=$(curl -s -X POST "$base/auth/login" -H 'Content-Type: application/json' -d "$login_body" \
    | luajit -e 'local t = require("cjson").decode(io.read("*a")); io.write(t.access_token or "")')
  [ -n "$access" ] || { echo "bench: login gave no access token" >&2; exit 1; }
  export BENCH_TOKEN="$access" BENCH_EMAIL="$email" BENCH_PASSWORD="$password"
}

# ---- wrk ------------------------------------------------------------------------------
# The machine is shared and noisy: a scenario and its references run in
# turns (ROUNDS slices of SLICE seconds each, interleaved), so a burst of
# someone else's load hits both sides of a ratio alike. report.lua adds the
# slices up (requests / seconds) and takes the median of their latencies.
warmed=" "

# wrk_slice scenario connections script url [wrk threads]: one slice, with a
# 1 s warm-up before the first one of each scenario.
wrk_slice() {
  local name=$1 c=$2 script=$3 url=$4 t=${5:-$THREADS}
  if [[ "$warmed" != *" $name "* ]]; then
    BENCH_SCENARIO="$name" BENCH_OUT="$tmp/warmup.jsonl" \
      wrk -t"$t" -c"$c" -d1s --timeout 10s -s "bench/$script" "$url" >/dev/null
    warmed="$warmed$name "
  fi
  BENCH_SCENARIO="$name" BENCH_OUT="$results" \
    wrk -t"$t" -c"$c" -d"${SLICE}s" --timeout 10s -s "bench/$script" "$url" >>"$tmp/wrk-$name.txt"
}
