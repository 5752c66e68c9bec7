#!/usr/bin/env bash
# bench/run.sh — `make bench`: moonkeep under wrk, side by side with its
# ceilings, measured in the same run on the same machine:
#
#   bare evhttp   bench/bare_evhttp.c, the same body from WORKERS processes
#                 on one shared listening socket (moonkeep's model), and
#                 again with one SO_REUSEPORT socket per process
#   nginx         bench/nginx.conf, WORKERS workers, one shared socket
#   pgbench       -S (and -N for writes) -M prepared, as many clients as
#                 moonkeep's whole pool (DB_POOL_SIZE x WORKERS), on the
#                 same PostgreSQL cluster, in its own database
#   argon2id      bench/hash_cost.c: one verify with moonkeep's parameters
#
# It builds nothing itself but the two helpers (the Makefile builds the
# release binary first), starts a private PostgreSQL (tools/pg-cluster.sh)
# in a temporary folder, migrates and seeds it (BENCH_USERS users by SQL, an
# admin through the API: register, confirm from the outbox mail, log in),
# starts moonkeep and the reference servers, runs every scenario in
# BENCH_ROUNDS interleaved slices of BENCH_SLICE seconds (after a 1 s
# warm-up), prints the table and writes it to bench/results/latest.json (and
# bench/results/run-<time>.json). Everything it started is stopped on the
# way out, failure or not. About two and a half minutes in all.
#
# Settings (environment): WORKERS (2), DB_POOL_SIZE (4), BENCH_SLICE (2),
# BENCH_ROUNDS (3), BENCH_CONNECTIONS (50: throughput scenarios),
# BENCH_LOGIN_CONNECTIONS (16),
# BENCH_THREADS (2: wrk threads, pgbench -j), BENCH_USERS (10000),
# BENCH_PORT (18080: it uses four ports from there), BENCH_PG_FSYNC (on),
# BENCH_BIN (build-release/moonkeep), BENCH_KEEP (1: keep the temp folder).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

BIN=${BENCH_BIN:-build-release/moonkeep}
WORKERS=${WORKERS:-2}
DB_POOL_SIZE=${DB_POOL_SIZE:-4}
SLICE=${BENCH_SLICE:-2}
ROUNDS=${BENCH_ROUNDS:-3}
DURATION=$((SLICE * ROUNDS))
CONNS=${BENCH_CONNECTIONS:-50}
LOGIN_CONNS=${BENCH_LOGIN_CONNECTIONS:-16}
THREADS=${BENCH_THREADS:-2}
USERS=${BENCH_USERS:-10000}
PORT=${BENCH_PORT:-18080}
BARE_PORT=$((PORT + 1))
REUSE_PORT=$((PORT + 2))
NGINX_PORT=$((PORT + 3))
POOL_TOTAL=$((DB_POOL_SIZE * WORKERS))
BENCH_DIR="$root/bench"
export BENCH_DIR

[ -x "$BIN" ] || { echo "bench: $BIN not found (make bench builds it)" >&2; exit 1; }
for tool in wrk nginx curl luajit; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (make deps installs it)" >&2; exit 1; }
done
pgbin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
[ -x "$pgbin/pgbench" ] || { echo "bench: pgbench not found under /usr/lib/postgresql" >&2; exit 1; }
for p in "$PORT" "$BARE_PORT" "$REUSE_PORT" "$NGINX_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "bench: port $p is in use (set BENCH_PORT)" >&2
    exit 1
  fi
done

tmp=$(mktemp -d /tmp/mkbench.XXXXXX)
chmod 755 "$tmp"
results="$tmp/results.jsonl"
: >"$results"
started=()   # pids of the servers we started, stopped in reverse order
ok=0

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
  local i
  trap - EXIT INT TERM
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do stop_pid "${started[$i]}"; done
  tools/pg-cluster.sh stop "$tmp/pg" >/dev/null 2>&1 || true
  if [ "$ok" -ne 1 ]; then
    echo "bench: failed; last lines of the logs in $tmp:" >&2
    for f in "$tmp"/moonkeep.log "$tmp"/nginx/error.log "$tmp"/pg/postgres.log; do
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

say() { printf 'bench: %s\n' "$*" >&2; }
fact() { printf '%s\n' "$1" >>"$results"; }

wait_http() { # url: up to 20 s
  local i
  for i in $(seq 200); do
    curl -s -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.1
  done
  echo "bench: $1 did not answer" >&2
  return 1
}

# ---- helpers ------------------------------------------------------------------
say "building bench/bare_evhttp.c and bench/hash_cost.c"
helpers=build-release/bench
mkdir -p "$helpers"
read -r -a libevent_flags <<<"$(pkg-config --cflags --libs libevent)"
read -r -a libsodium_flags <<<"$(pkg-config --cflags --libs libsodium)"
cc -O2 -Wall -Wextra -o "$helpers/bare_evhttp" bench/bare_evhttp.c "${libevent_flags[@]}"
cc -O2 -Wall -Wextra -D_GNU_SOURCE -Ihost -o "$helpers/hash_cost" bench/hash_cost.c host/bind/pwhash_memory.c \
  host/server/interpose_mmap.c "${libsodium_flags[@]}" -lpthread

# ---- the machine -------------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
fact "$(printf '{"kind":"meta","nproc":%d,"cpu":"%s","kernel":"%s","time":"%s","workers":%d,"db_pool_size":%d,"duration_s":%d,"slice_s":%d,"rounds":%d,"connections":%d,"login_connections":%d,"wrk_threads":%d,"users":%d,"pg_fsync":"%s","commit":"%s"}' \
  "$(nproc)" "${cpu//\"/}" "$(uname -r)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$WORKERS" "$DB_POOL_SIZE" \
  "$DURATION" "$SLICE" "$ROUNDS" "$CONNS" "$LOGIN_CONNS" "$THREADS" "$USERS" "${BENCH_PG_FSYNC:-on}" \
  "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)")"

# ---- PostgreSQL, seeded ---------------------------------------------------------------
say "starting PostgreSQL in $tmp/pg"
DATABASE_URL=$(PG_FSYNC=${BENCH_PG_FSYNC:-on} tools/pg-cluster.sh start "$tmp/pg")
export DATABASE_URL
pguser=postgres
[ "$(id -u)" -eq 0 ] || pguser=$(id -un)
pg=(-h "$tmp/pg" -p 5432 -U "$pguser")
"$BIN" migrate >"$tmp/migrate.log" 2>&1 || { cat "$tmp/migrate.log" >&2; exit 1; }
say "seeding $USERS users"
"$pgbin/psql" "${pg[@]}" -d moonkeep -qX -v ON_ERROR_STOP=1 >/dev/null <<SQL
INSERT INTO users (id, email, name, active)
  SELECT g, 'user' || g || '@seed.test', 'Seeded user ' || g, g % 10 <> 0
  FROM generate_series(1, $USERS) AS g;
SELECT setval(pg_get_serial_sequence('users', 'id'), $USERS);
VACUUM ANALYZE users;
SQL
"$pgbin/createdb" "${pg[@]}" pgbench
"$pgbin/pgbench" "${pg[@]}" -i -s 1 -q pgbench >"$tmp/pgbench-init.log" 2>&1 \
  || { cat "$tmp/pgbench-init.log" >&2; exit 1; }

# ---- moonkeep ----------------------------------------------------------------------
# A copy named mk-bench: its processes are told apart from any other moonkeep
# on the machine (ps, perf, and whatever stops development servers by name).
say "starting moonkeep ($WORKERS workers, DB_POOL_SIZE=$DB_POOL_SIZE)"
mkdir -p "$tmp/bin"
cp "$BIN" "$tmp/bin/mk-bench"
env JWT_SECRET="$(head -c 48 /dev/urandom | base64 -w0)" \
  HOST=127.0.0.1 PORT="$PORT" WORKERS="$WORKERS" DB_POOL_SIZE="$DB_POOL_SIZE" \
  OUTBOX_DIR="$tmp/outbox" PUBLIC_URL="http://127.0.0.1:$PORT" PID_FILE="$tmp/moonkeep.pid" \
  ACCESS_TOKEN_TTL_S=3600 SHUTDOWN_GRACE_S=2 MIGRATE_ON_START=false \
  "$tmp/bin/mk-bench" serve >"$tmp/moonkeep.log" 2>&1 &
mk=$!
started+=("$mk")
wait_http "http://127.0.0.1:$PORT/healthz"
sleep 0.5

# Hashing threads keep argon2id's memory (19 MiB each) for 2 s after their
# last hash (host/bind/pwhash_memory.c): RSS readings wait until none is kept
# (moonkeep_hash_memory_bytes 0, at most 10 s), so that they compare what
# serving requests costs.
wait_hash_memory_released() {
  local i kept
  for i in $(seq 100); do
    kept=$(curl -s --max-time 1 "http://127.0.0.1:$PORT/metrics" \
      | sed -n 's/^moonkeep_hash_memory_bytes \([0-9]*\).*/\1/p')
    [ "${kept:-1}" = 0 ] && return 0
    sleep 0.1
  done
  say "hashing threads still keep ${kept:-?} bytes; reading RSS anyway"
}

# RSS of each worker (the master's children), in KiB: {"kind":"rss",...}
rss_fact() { # label requests_so_far
  local pids list="" pid kb
  wait_hash_memory_released
  pids=$(ps -o pid= --ppid "$mk" | tr -s ' \n' ' ')
  for pid in $pids; do
    kb=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null || echo 0)
    list="$list${list:+,}{\"pid\":$pid,\"rss_kib\":${kb:-0}}"
  done
  fact "{\"kind\":\"rss\",\"label\":\"$1\",\"requests\":$2,\"workers\":[$list]}"
}
rss_fact idle 1

say "registering, confirming and logging in the bench admin"
email="bench-admin@bench.test"
password="bench password $(head -c 6 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9')"
status=$(curl -s -o "$tmp/register.json" -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/auth/register" \
  -H 'Content-Type: application/json' \
  -d "{\"email\":\"$email\",\"name\":\"benchadmin\",\"password\":\"$password\"}")
[ "$status" = 201 ] || { echo "bench: register answered $status: $(cat "$tmp/register.json")" >&2; exit 1; }
token=""
for i in $(seq 50); do
  eml=""
  for f in "$tmp/outbox"/*.eml; do [ -e "$f" ] && { eml=$f; break; }; done
  if [ -n "$eml" ]; then
    # quoted-printable: join soft line breaks, then take the token of the link
    token=$(sed -e ':a' -e '/=\r\?$/{N;s/=\r\?\n//;ba' -e '}' "$eml" | sed 's/=3D/=/g' \
      | grep -o 'auth/confirm?token=[A-Za-z0-9_-]*' | head -n 1 | cut -d= -f2 || true)
    [ -n "$token" ] && break
  fi
  sleep 0.1
done
if [ -n "$token" ]; then
  status=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/json' \
    "http://127.0.0.1:$PORT/auth/confirm?token=$token")
  [ "$status" = 200 ] || { echo "bench: confirm answered $status" >&2; exit 1; }
else
  say "no confirmation link in the outbox; confirming through SQL"
  "$pgbin/psql" "${pg[@]}" -d moonkeep -qX -c "UPDATE admins SET confirmed = true WHERE email = '$email'" >/dev/null
fi
login_body="{\"email\":\"$email\",\"password\":\"$password\"}"
access=$(curl -s -X POST "http://127.0.0.1:$PORT/auth/login" -H 'Content-Type: application/json' -d "$login_body" \
  | luajit -e 'local t = require("cjson").decode(io.read("*a")); io.write(t.access_token or "")')
[ -n "$access" ] || { echo "bench: login gave no access token" >&2; exit 1; }
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $access" "http://127.0.0.1:$PORT/users/1")
[ "$status" = 200 ] || { echo "bench: GET /users/1 answered $status" >&2; exit 1; }
export BENCH_TOKEN="$access" BENCH_EMAIL="$email" BENCH_PASSWORD="$password" BENCH_USERS="$USERS"

# 10 000 authenticated reads over 50 connections (so that every worker gets
# some: the socket is shared), then the RSS "after 10k"
curl -s --no-progress-meter --parallel --parallel-max 50 -H "Authorization: Bearer $access" \
  "http://127.0.0.1:$PORT/users/[1-10000]" >/dev/null 2>&1
rss_fact after_10k 10000

# then authenticated reads in 2 s runs until 100 000 in all, and the RSS again
reads=10000
while [ "$reads" -lt 100000 ]; do
  n=$(BENCH_SCENARIO=rss_fill BENCH_OUT=/dev/null wrk -t"$THREADS" -c"$CONNS" -d2s --timeout 10s \
        -s bench/wrk_user_read.lua "http://127.0.0.1:$PORT/users/1" | tail -n 1 \
      | sed -n 's/.*"requests":\([0-9]*\).*/\1/p')
  reads=$((reads + ${n:-0}))
  [ "${n:-0}" -gt 0 ] || { echo "bench: no reads answered" >&2; exit 1; }
done
rss_fact after_100k "$reads"

# ---- the reference servers ------------------------------------------------------------
say "bare evhttp, $WORKERS processes, shared socket and SO_REUSEPORT; nginx, $WORKERS workers"
"$helpers/bare_evhttp" "$BARE_PORT" "$WORKERS" shared >/dev/null 2>&1 &
started+=("$!")
"$helpers/bare_evhttp" "$REUSE_PORT" "$WORKERS" reuseport >/dev/null 2>&1 &
started+=("$!")
mkdir -p "$tmp/nginx"
sed "s/@PORT@/$NGINX_PORT/" bench/nginx.conf >"$tmp/nginx/nginx.conf"
nginx_g="daemon off; worker_processes $WORKERS; pid $tmp/nginx/nginx.pid;"
[ "$(id -u)" -ne 0 ] || nginx_g="$nginx_g user nobody nogroup;"
nginx -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" -g "$nginx_g" &
started+=("$!")
for p in "$BARE_PORT" "$REUSE_PORT" "$NGINX_PORT"; do wait_http "http://127.0.0.1:$p/"; done

# ---- scenarios -----------------------------------------------------------------------
# The machine is shared and noisy: a scenario and its references run in
# turns (ROUNDS slices of SLICE seconds each, interleaved), so a burst of
# someone else's load hits both sides of a ratio alike. report.lua adds the
# slices up (requests / seconds) and takes the median of their latencies.
base="http://127.0.0.1:$PORT"
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

# pgbench_slice scenario mode-flags...: one slice on the pgbench database
pgbench_slice() {
  local name=$1 out tps lat
  shift
  out="$tmp/$name.txt"
  if [[ "$warmed" != *" $name "* ]]; then
    "$pgbin/pgbench" "${pg[@]}" -n -M prepared -c "$POOL_TOTAL" -j "$THREADS" -T 1 "$@" pgbench >/dev/null 2>&1
    warmed="$warmed$name "
  fi
  "$pgbin/pgbench" "${pg[@]}" -n -M prepared -c "$POOL_TOTAL" -j "$THREADS" -T "$SLICE" "$@" pgbench \
    >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -n 1)
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$out" | head -n 1)
  fact "{\"kind\":\"pgbench\",\"scenario\":\"$name\",\"rps\":${tps:-0},\"avg_ms\":${lat:-0},\"duration_s\":$SLICE,\"clients\":$POOL_TOTAL}"
}

# the crypto floor: one verify with moonkeep's parameters, and all cores at once
hash_slice() {
  fact "$(sed 's/^{/{"kind":"hash","cores":'"$(nproc)"',/' <("$helpers/hash_cost" "$(nproc)" "$SLICE"))"
}

# The /healthz probe (one connection) idle, then while a login storm runs.
storm_slices() {
  wrk_slice mk_healthz_idle 1 wrk_get.lua "$base/healthz" 1
  BENCH_SCENARIO=mk_login_storm BENCH_OUT="$tmp/storm.jsonl" \
    wrk -t"$THREADS" -c"$LOGIN_CONNS" -d"$((SLICE + 3))s" --timeout 10s -s bench/wrk_login.lua \
    "$base/auth/login" >>"$tmp/wrk-storm.txt" &
  storm=$!
  started+=("$storm")
  sleep 1
  wrk_slice mk_healthz_storm 1 wrk_get.lua "$base/healthz" 1
  wait "$storm" || true
  unset 'started[-1]'
}

run_round() { # round number: every scenario once, grouped with its references
  say "round $1 of $ROUNDS"
  wrk_slice ref_bare_shared "$CONNS" wrk_get.lua "http://127.0.0.1:$BARE_PORT/healthz"
  wrk_slice mk_healthz "$CONNS" wrk_get.lua "$base/healthz"
  wrk_slice ref_nginx "$CONNS" wrk_get.lua "http://127.0.0.1:$NGINX_PORT/healthz"
  wrk_slice mk_root "$CONNS" wrk_get.lua "$base/"
  wrk_slice ref_bare_reuseport "$CONNS" wrk_get.lua "http://127.0.0.1:$REUSE_PORT/healthz"

  pgbench_slice ref_pgbench_select -S
  wrk_slice mk_user_read "$CONNS" wrk_user_read.lua "$base/users/1"
  wrk_slice mk_user_list "$CONNS" wrk_get.lua "$base/users?limit=20"

  pgbench_slice ref_pgbench_writes -N
  wrk_slice mk_writes "$CONNS" wrk_writes.lua "$base/user"

  hash_slice
  wrk_slice mk_login "$LOGIN_CONNS" wrk_login.lua "$base/auth/login"

  storm_slices
}

for round in $(seq "$ROUNDS"); do run_round "$round"; done

# RSS at the end, with the number of requests moonkeep has answered
total=$(cat "$results" "$tmp/warmup.jsonl" "$tmp/storm.jsonl" \
  | sed -n 's/.*"scenario":"mk_[^"]*","requests":\([0-9]*\).*/\1/p' | awk -v r="$reads" '{s += $1} END {print s + r + 3}')
rss_fact end "$total"

# ---- the table -----------------------------------------------------------------------
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
luajit bench/report.lua "$results" bench/results/latest.json "bench/results/run-$stamp.json"
ok=1
