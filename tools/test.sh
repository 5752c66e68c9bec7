#!/usr/bin/env bash
# `make test`: starts what the suites need (a private PostgreSQL cluster in a
# temporary folder, on a unix socket), runs the unit specs, then the
# end-to-end specs against build/moonkeep and again against the sanitizer
# build, stops everything it started (also when a spec fails), and ends with
# one summary line "N passed, N failed".
#
#   tools/test.sh          every suite
#   tools/test.sh unit     unit and route specs only
#   tools/test.sh e2e      end-to-end specs against build/moonkeep only
#                          ($MOONKEEP_BIN, if set: `make coverage` uses this)
#   tools/test.sh fuzz     a short run of each libFuzzer harness (FUZZ_SECONDS, default 5)
#   tools/test.sh lint     the linters (tools/lint/run.sh; also `make lint`)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
only=${1:-all}

tmp=$(mktemp -d /tmp/moonkeep-test.XXXXXX)
chmod 755 "$tmp"
cleanup() {
  tools/pg-cluster.sh stop "$tmp/pg" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

passed=0
failed=0
run_suite() { # name, env..., -- busted args...
  local name=$1; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  echo "== $name"
  local out="$tmp/$name.out"
  env "${envs[@]}" busted --lua=luajit "$@" 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  local ok fail err
  ok=$(grep -aoE '[0-9]+ success' "$out" | tail -n1 | grep -oE '[0-9]+' || echo 0)
  fail=$(grep -aoE '[0-9]+ failure' "$out" | tail -n1 | grep -oE '[0-9]+' || echo 0)
  err=$(grep -aoE '[0-9]+ error' "$out" | tail -n1 | grep -oE '[0-9]+' || echo 0)
  passed=$((passed + ok))
  failed=$((failed + fail + err))
  if [ "$rc" -ne 0 ] && [ $((fail + err)) -eq 0 ]; then failed=$((failed + 1)); fi
}

if [ "$only" = all ] || [ "$only" = unit ]; then
  run_suite unit -- spec/unit spec/routes
fi

if [ "$only" = all ] || [ "$only" = e2e ]; then
  DATABASE_URL=$(PG_FSYNC=off tools/pg-cluster.sh start "$tmp/pg") || { echo "cannot start PostgreSQL"; exit 1; }
  export DATABASE_URL PG_CLUSTER_DIR="$tmp/pg"
  export JWT_SECRET=${JWT_SECRET:-$(head -c 48 /dev/urandom | base64 -w0)}
  # store_sql_spec (every statement prepared against the migrated schema)
  # needs a database: it runs here, once
  run_suite e2e MOONKEEP_BIN="${MOONKEEP_BIN:-build/moonkeep}" MOONKEEP_SQL_CHECK_URL="$DATABASE_URL" \
    -- spec/e2e spec/unit/store_sql_spec.lua
  if [ "$only" = all ]; then
    run_suite e2e-asan MOONKEEP_BIN=build-asan/moonkeep \
      ASAN_OPTIONS=abort_on_error=0:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      MOONKEEP_SANITIZED=1 -- spec/e2e
  fi
fi

# One result per linter (tools/lint/run.sh prints "lint: N passed, N failed").
if [ "$only" = all ] || [ "$only" = lint ]; then
  echo "== lint"
  bash tools/lint/run.sh 2>&1 | tee "$tmp/lint.out"
  lint_rc=${PIPESTATUS[0]}
  lint_line=$(grep -aE '^lint: [0-9]+ passed, [0-9]+ failed' "$tmp/lint.out" | tail -n1)
  lint_ok=$(echo "$lint_line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
  lint_fail=$(echo "$lint_line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || echo 0)
  passed=$((passed + ${lint_ok:-0}))
  failed=$((failed + ${lint_fail:-0}))
  if [ "$lint_rc" -ne 0 ] && [ "${lint_fail:-0}" -eq 0 ]; then failed=$((failed + 1)); fi
fi

if [ "$only" = all ] || [ "$only" = fuzz ]; then
  echo "== fuzz"
  FUZZ_SECONDS=${FUZZ_SECONDS:-5} tools/fuzz.sh | tee "$tmp/fuzz.out"
  ok=$(grep -c '^fuzz .*: ok' "$tmp/fuzz.out")
  fail=$(grep -c -e '^fuzz .*: FAILED' -e '^fuzz build: failed' "$tmp/fuzz.out")
  passed=$((passed + ok))
  failed=$((failed + fail))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
