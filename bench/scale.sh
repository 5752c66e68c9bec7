#!/usr/bin/env bash
# bench/scale.sh — the scale table of `make bench` (also `make bench-scale`
# alone): does what moonkeep costs per request stay flat as the data grows?
#
# One private PostgreSQL (bench/lib.sh; shared_buffers raised, see below)
# with one database per size in BENCH_SCALE_SIZES, each migrated and seeded
# by SQL (bench/scale_seed.sql: generate_series, one statement), and one
# moonkeep per database (WORKERS, DB_POOL_SIZE, ports BENCH_PORT + i, an
# admin logged in through the API). In BENCH_ROUNDS rounds, each scenario
# runs one slice of BENCH_SLICE seconds at every size in turn (after a 1 s
# warm-up each), so a ratio between sizes compares slices seconds apart:
#
#   read       GET /users/{id}, random ids among all the users (bearer token)
#   first      GET /users?limit=20
#   deep       GET /users?limit=20&cursor=C, C past 90 % of the users (made
#              with the cursor key, as lib/cursor.lua makes it)
#   q_common   GET /users?q=son       ~14 % of the users match
#   q_rare     GET /users?q=quixote   10 users match, at every size
#   q_one      GET /users?q=a         one letter (no trigram)
#   login      POST /auth/login at BENCH_LOGIN_CONNECTIONS (16): a login storm;
#              before the largest size's, BENCH_SCALE_SESSIONS (100 000)
#              sessions of 1000 admins and BENCH_SCALE_RATE_ROWS (1 000 000)
#              rate-limit rows are added
#   q_none2    GET /users?q=zq at 2 connections: two letters no user has,
#              the one search whose cost grows with the table (for the
#              record; docs/performance.md, "Searching users")
#
# and prints the table with, for every row, the largest size ÷ the smallest
# (req/s and p99; targets: ≥ 1/1.5 and ≤ 1.5), and writes it to
# bench/results/scale-latest.json and bench/results/scale-<time>.json.
#
# Settings (environment), beside bench/lib.sh's: BENCH_SCALE_SIZES
# ("10000 100000 1000000"), BENCH_SCALE_SESSIONS (100000),
# BENCH_SCALE_RATE_ROWS (1000000), BENCH_SCALE_SHARED_BUFFERS (1GB: the
# cluster's shared_buffers), BENCH_LOGIN_CONNECTIONS (16), BENCH_PORT
# (18080: one port a size). About seven minutes with the defaults (2 s x 3
# rounds), two of them seeding.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=bench/lib.sh
. bench/lib.sh
read -r -a SIZES <<<"${BENCH_SCALE_SIZES:-10000 100000 1000000}"
SESSIONS=${BENCH_SCALE_SESSIONS:-100000}
RATE_ROWS=${BENCH_SCALE_RATE_ROWS:-1000000}
LOGIN_CONNS=${BENCH_LOGIN_CONNECTIONS:-16}
PORT=${BENCH_PORT:-18080}
SHARED_BUFFERS=${BENCH_SCALE_SHARED_BUFFERS:-1GB}
largest=${SIZES[-1]}

need_tools wrk curl luajit python3
ports_free "$PORT"

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
fact "$(printf '{"kind":"meta","nproc":%d,"cpu":"%s","time":"%s","workers":%d,"db_pool_size":%d,"slice_s":%d,"rounds":%d,"connections":%d,"login_connections":%d,"sizes":[%s],"sessions":%d,"rate_rows":%d,"pg_fsync":"%s","commit":"%s"}' \
  "$(nproc)" "${cpu//\"/}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$WORKERS" "$DB_POOL_SIZE" "$SLICE" "$ROUNDS" \
  "$CONNS" "$LOGIN_CONNS" "$(IFS=,; echo "${SIZES[*]}")" "$SESSIONS" "$RATE_ROWS" "${BENCH_PG_FSYNC:-on}" \
  "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)")"

start_pg
# PostgreSQL's default shared_buffers (128 MB) is smaller than the users
# table and its indexes at 1M users (~400 MB): the largest size would
# measure the buffer pool's misses, which a deployment of that size sizes
# away (RDS: a quarter of the instance's memory).
psql_do -c "ALTER SYSTEM SET shared_buffers = '$SHARED_BUFFERS'" >/dev/null
tools/pg-cluster.sh stop "$tmp/pg" >/dev/null
tools/pg-cluster.sh start "$tmp/pg" >/dev/null

# One database and one moonkeep per size (mk_<size>, port PORT + i), all on
# the one cluster, so that the sizes are measured in turns, seconds apart,
# like a scenario and its references in bench/run.sh: the machine's noise
# lands on every size alike. The largest size's database also gets the
# sessions and rate-limit rows.
urls=() bases=() tokens=()
for i in "${!SIZES[@]}"; do
  size=${SIZES[$i]}
  "$pgbin/createdb" "${pg[@]}" "mk_$size"
  urls[i]=${DATABASE_URL/\/moonkeep\?//mk_$size?}
  DATABASE_URL=${urls[$i]} "$BIN" migrate >>"$tmp/migrate.log" 2>&1 || { cat "$tmp/migrate.log" >&2; exit 1; }
  say "seeding $size users"
  PGDB="mk_$size" psql_do -v from=1 -v to="$size" -f bench/scale_seed.sql >/dev/null
  PGDB="mk_$size" psql_do -c "VACUUM ANALYZE users" >/dev/null
done
# the seeding's dirty pages written now, not during the measurements
psql_do -c "CHECKPOINT" >/dev/null

# The cursor lib/cursor.lua gives for "users after id $1": base64url of
# "users:<id>" (no padding), ".", the first 32 hex of its HMAC-SHA-256 under
# the key derived from JWT_SECRET (CURSOR_SECRET is not set here).
cursor_after() {
  python3 - "$BENCH_JWT_SECRET" "$1" <<'PY'
import base64, hashlib, hmac, sys
secret, last = sys.argv[1].encode(), sys.argv[2]
key = hmac.new(secret, b"moonkeep pagination cursor v1", hashlib.sha256).hexdigest().encode()
payload = ("users:" + last).encode()
mac = hmac.new(key, payload, hashlib.sha256).hexdigest()[:32]
print(base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + mac)
PY
}

# users_page URL: "<count> <first id> <next_cursor or null>" of a GET /users page
users_page() {
  curl -s -H "Authorization: Bearer $BENCH_TOKEN" "$1" | luajit -e '
    local t = require("cjson").decode(io.read("*a"))
    local u = t.users or {}
    io.write(#u, " ", u[1] and string.format("%d", u[1].id) or "-", " ", tostring(t.next_cursor))'
}

expect_page() { # url what expected-count [expected-first-id]
  local got count first
  got=$(users_page "$1")
  read -r count first _ <<<"$got"
  if [ "$count" != "$3" ] || { [ -n "${4:-}" ] && [ "$first" != "$4" ]; }; then
    echo "bench: $2 ($1) gave $got, expected $3 users${4:+ from id $4}" >&2
    exit 1
  fi
}

# Sessions of 1000 admins, some revoked, some expired; rate-limit rows of
# every kind, windows spread over the last hour.
seed_sessions_and_limits() {
  say "adding $SESSIONS sessions and $RATE_ROWS rate-limit rows"
  psql_do >/dev/null <<SQL
INSERT INTO admins (email, name, password_hash, confirmed)
  SELECT 'scale-admin-' || g || '@bench.test', 'scaleadmin' || g, 'not a hash', true
  FROM generate_series(1, 1000) AS g;
INSERT INTO sessions (admin_id, refresh_jti, created_at, last_used_at, expires_at, revoked_at)
  SELECT a.id, md5(g::text), now() - interval '1 day', now() - (g % 3600) * interval '1 second',
         now() + ((g % 40) - 10) * interval '1 day', CASE WHEN g % 5 = 0 THEN now() END
  FROM generate_series(1, $SESSIONS) AS g
  JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM admins WHERE email LIKE 'scale-admin-%') AS a
    ON a.n = g % 1000;
INSERT INTO rate_limits (kind, key, window_start, count)
  SELECT (ARRAY['login_failure', 'mail_confirm', 'mail_reset', 'client_hash'])[1 + g % 4],
         CASE WHEN g % 4 = 3 THEN '10.' || (g >> 16) % 256 || '.' || (g >> 8) % 256 || '.' || g % 256 || '.' || g
              ELSE 'rate' || g || '@bench.test' END,
         now() - (g % 3600) * interval '1 second', 1 + g % 5
  FROM generate_series(1, $RATE_ROWS) AS g;
VACUUM ANALYZE admins, sessions, rate_limits;
SQL
}

for i in "${!SIZES[@]}"; do
  size=${SIZES[$i]}
  LOGS+=("$tmp/mk-$size.log")
  DATABASE_URL=${urls[$i]} start_moonkeep $((PORT + i)) "mk-$size"
  bases[i]=$base
  login_bench_admin
  tokens[i]=$BENCH_TOKEN
  if [ "$size" = "$largest" ] && [ "${#SIZES[@]}" -gt 1 ]; then PGDB="mk_$size" seed_sessions_and_limits; fi

  # the pages are what the table says they are
  deep_id=$((size * 9 / 10))
  [ "$(users_page "$base/users?limit=20" | cut -d' ' -f3)" = "$(cursor_after 20)" ] \
    || { echo "bench: bench/scale.sh makes cursors unlike lib/cursor.lua's" >&2; exit 1; }
  expect_page "$base/users?limit=20&cursor=$(cursor_after "$deep_id")" "the deep page" 20 $((deep_id + 1))
  expect_page "$base/users?limit=20&q=son" "the common search" 20
  rare=$((size >= 10000 ? 10 : (size >= 777 ? (size - 777) / 1000 + 1 : 0)))
  expect_page "$base/users?limit=20&q=quixote" "the rare search" "$rare"
  expect_page "$base/users?limit=20&q=a" "the one-letter search" 20
  expect_page "$base/users?limit=20&q=zq" "the two-letter search" 0
done
psql_do -c "CHECKPOINT" >/dev/null

# scale_slice kind connections script path [wrk threads]: one slice at every
# size in turn, against that size's moonkeep, with its token
scale_slice() {
  local kind=$1 c=$2 script=$3 path=$4 t=${5:-$THREADS} i size
  for i in "${!SIZES[@]}"; do
    size=${SIZES[$i]}
    BENCH_TOKEN=${tokens[$i]} BENCH_USERS=$size \
      wrk_slice "$kind@$size" "$c" "$script" "${bases[$i]}${path//@DEEP@/$(cursor_after $((size * 9 / 10)))}" "$t"
  done
}

for round in $(seq "$ROUNDS"); do
  say "round $round of $ROUNDS"
  scale_slice read "$CONNS" wrk_user_read.lua "/users/1"
  scale_slice first "$CONNS" wrk_get.lua "/users?limit=20"
  scale_slice deep "$CONNS" wrk_get.lua "/users?limit=20&cursor=@DEEP@"
  scale_slice q_common "$CONNS" wrk_get.lua "/users?limit=20&q=son"
  scale_slice q_rare "$CONNS" wrk_get.lua "/users?limit=20&q=quixote"
  scale_slice q_one "$CONNS" wrk_get.lua "/users?limit=20&q=a"
  scale_slice login "$LOGIN_CONNS" wrk_login.lua "/auth/login"
  scale_slice q_none2 2 wrk_get.lua "/users?limit=20&q=zq" 1
done

mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
luajit bench/report.lua --scale "$results" bench/results/scale-latest.json "bench/results/scale-$stamp.json"
ok=1
