#!/usr/bin/env bash
# bench/run.sh — `make bench`: moonkeep under wrk, side by side with its
# ceilings, measured in the same run on the same machine:
#
#   bare evhttp   bench/bare_evhttp.c, the same body from WORKERS processes
#                 on one shared listening socket (moonkeep's model), and
#                 again with one SO_REUSEPORT socket per process
#   nginx         bench/nginx.conf, WORKERS workers, one shared socket
#   nginx-lua     bench/nginx-lua.conf: nginx with lua-nginx-module, WORKERS
#                 workers, GET /'s body built and encoded by Lua (cjson),
#                 a JSON access log to a file: the like-for-like reference
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
# BENCH_ROUNDS (3), BENCH_RUNS (1; `make bench` sets 3), BENCH_CONNECTIONS
# (50: throughput scenarios), BENCH_LOGIN_CONNECTIONS (16),
# BENCH_THREADS (2: wrk threads, pgbench -j), BENCH_USERS (10000),
# BENCH_PORT (18080: it uses five ports from there), BENCH_PG_FSYNC (on),
# BENCH_BIN (build-release/moonkeep), BENCH_KEEP (1: keep the temp folder),
# BENCH_SMOKE (1: 1 s slices, 1 round, 1 run: checks that it all runs; the
# numbers are not to be read). The scale table is bench/scale.sh's.
set -euo pipefail
cd "$(dirname "$0")/.."

# BENCH_RUNS (1, or 3 under `make bench`) runs of the whole bench, each on
# its own fresh cluster and servers, then the median table of them
# (report.lua --median) in bench/results/median.json.
if [ "${BENCH_SMOKE:-0}" = 1 ]; then : "${BENCH_RUNS:=1}"; fi
RUNS=${BENCH_RUNS:-1}
if [ "$RUNS" -gt 1 ] && [ -z "${BENCH_RUN_JSON:-}" ]; then
  mkdir -p bench/results
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  runs=()
  for i in $(seq "$RUNS"); do
    printf 'bench: run %d of %d\n' "$i" "$RUNS" >&2
    runs+=("bench/results/run-$stamp-$i.json")
    BENCH_RUN_JSON="${runs[-1]}" bash "$0"
  done
  luajit bench/report.lua --median bench/results/median.json "${runs[@]}"
  exit 0
fi

# shellcheck source=bench/lib.sh
. bench/lib.sh
LOGIN_CONNS=${BENCH_LOGIN_CONNECTIONS:-16}
USERS=${BENCH_USERS:-10000}
PORT=${BENCH_PORT:-18080}
BARE_PORT=$((PORT + 1))
REUSE_PORT=$((PORT + 2))
NGINX_PORT=$((PORT + 3))
NGINX_LUA_PORT=$((PORT + 4))
LOGS+=("$tmp/nginx/error.log" "$tmp/nginx-lua/error.log")

need_tools wrk nginx curl luajit
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] \
  || { echo "bench: lua-nginx-module is missing (make deps installs libnginx-mod-http-lua)" >&2; exit 1; }
ports_free "$PORT" "$BARE_PORT" "$REUSE_PORT" "$NGINX_PORT" "$NGINX_LUA_PORT"

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
start_pg
say "seeding $USERS users"
psql_do >/dev/null <<SQL
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
start_moonkeep "$PORT"

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

login_bench_admin
access=$BENCH_TOKEN
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $access" "http://127.0.0.1:$PORT/users/1")
[ "$status" = 200 ] || { echo "bench: GET /users/1 answered $status" >&2; exit 1; }
export BENCH_USERS="$USERS"

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
# nginx + lua-nginx-module: GET / answered by Lua with moonkeep's own body
# (its service and version, read from moonkeep's GET / here), through cjson,
# with a JSON access log (bench/nginx-lua.conf)
say "nginx + lua-nginx-module, $WORKERS workers"
root_body=$(curl -s "$base/")
service=$(luajit -e 'io.write(require("cjson").decode(io.read("*a")).service)' <<<"$root_body")
version=$(luajit -e 'io.write(require("cjson").decode(io.read("*a")).version)' <<<"$root_body")
mkdir -p "$tmp/nginx-lua"
sed -e "s/@PORT@/$NGINX_LUA_PORT/" -e "s/@SERVICE@/$service/" -e "s/@VERSION@/$version/" \
  bench/nginx-lua.conf >"$tmp/nginx-lua/nginx.conf"
nginx_g="daemon off; worker_processes $WORKERS; pid $tmp/nginx-lua/nginx.pid;"
[ "$(id -u)" -ne 0 ] || nginx_g="$nginx_g user nobody nogroup;"
nginx -p "$tmp/nginx-lua/" -c "$tmp/nginx-lua/nginx.conf" -e "$tmp/nginx-lua/error.log" -g "$nginx_g" &
started+=("$!")
for p in "$BARE_PORT" "$REUSE_PORT" "$NGINX_PORT" "$NGINX_LUA_PORT"; do wait_http "http://127.0.0.1:$p/"; done
lua_body=$(curl -s "http://127.0.0.1:$NGINX_LUA_PORT/")
[ "$(luajit -e 'local c = require("cjson"); local t = c.decode(io.read("*a")); io.write(t.service, " ", t.version, " ", t.docs)' <<<"$lua_body")" = "$service $version /apidocs" ] \
  || { echo "bench: nginx-lua answered $lua_body, moonkeep $root_body" >&2; exit 1; }

# ---- scenarios -----------------------------------------------------------------------
# (wrk_slice and the interleaving: bench/lib.sh)

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
  wrk_slice ref_nginx_lua "$CONNS" wrk_get.lua "http://127.0.0.1:$NGINX_LUA_PORT/"
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
luajit bench/report.lua "$results" bench/results/latest.json "${BENCH_RUN_JSON:-bench/results/run-$stamp.json}"
ok=1
