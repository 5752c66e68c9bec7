#!/usr/bin/env bash
# tools/coverage.sh — `make coverage`: line coverage of the C host (host/,
# gcov + gcovr) and of the Lua service (scripts/, spec/support/coverage.lua +
# tools/lua-coverage.lua) over the unit, route and end-to-end suites, run
# against a --coverage build in build-coverage/.
#
# Prints both summaries and writes build-coverage/report/ (host.txt,
# host.html, host.xml for CI tools, scripts.txt). Exits 1 when a suite
# fails or a figure is below its floor:
COVERAGE_FLOOR_HOST=${COVERAGE_FLOOR_HOST:-85}       # % of host/ lines
COVERAGE_FLOOR_SCRIPTS=${COVERAGE_FLOOR_SCRIPTS:-90} # % of scripts/ lines
#
# Forked workers are counted: they leave through exit(), which writes their
# .gcda counts (merged by libgcov under a file lock). The server's Lua is
# counted when the host runs MOONKEEP_LUA_COVERAGE in each VM (host/lua/vm.c);
# without that, scripts/ is measured from the in-process specs alone.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$PWD
build="build-coverage"
report=$build/report
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DMOONKEEP_COVERAGE=ON >/dev/null || exit 1
cmake --build "$build" -j "$jobs" || exit 1

# Fresh counts: C and Lua.
find "$build" -name '*.gcda' -delete
rm -rf "$report" "$build/lua-counts"
mkdir -p "$report" "$build/lua-counts"

export MOONKEEP_BIN=$build/moonkeep
export MOONKEEP_LUA_COVERAGE_DIR=$root/$build/lua-counts
export MOONKEEP_LUA_COVERAGE_ROOT=$root
export MOONKEEP_LUA_COVERAGE_HOST_SO=$root/$build/lua/host.so
export MOONKEEP_LUA_COVERAGE=$root/spec/support/coverage.lua
export LUA_INIT=@$root/spec/support/coverage.lua

suites_ok=1
bash tools/test.sh unit || suites_ok=0
bash tools/test.sh e2e || suites_ok=0
unset LUA_INIT

echo "== coverage: host/ (C lines)"
gcovr --root . --object-directory "$build" --filter 'host/' \
  --txt "$report/host.txt" --html-details "$report/host.html" --cobertura "$report/host.xml" \
  --print-summary >"$report/gcovr.out" 2>&1
c_rc=$?
cat "$report/host.txt"
host_pct=$(grep -E '^lines:' "$report/gcovr.out" | grep -oE '[0-9]+\.[0-9]+' | head -n1)

echo "== coverage: scripts/ (Lua lines)"
luajit tools/lua-coverage.lua "$build/lua-counts" "$report/scripts.txt" 0
scripts_pct=$(grep -E '^TOTAL' "$report/scripts.txt" | grep -oE '[0-9]+\.[0-9]+%' | tr -d %)

ok=1
echo
echo "host/    lines: ${host_pct:-?}% (floor ${COVERAGE_FLOOR_HOST}%)"
echo "scripts/ lines: ${scripts_pct:-?}% (floor ${COVERAGE_FLOOR_SCRIPTS}%)"
echo "report:  $report/ (host.html, host.txt, host.xml, scripts.txt)"
if [ $c_rc -ne 0 ] || [ -z "$host_pct" ] || [ -z "$scripts_pct" ]; then
  echo "coverage: no figures (gcovr or the Lua report failed; $report/gcovr.out)"; ok=0
fi
if [ -n "$host_pct" ] && awk -v a="$host_pct" -v b="$COVERAGE_FLOOR_HOST" 'BEGIN{exit !(a < b)}'; then
  echo "coverage: host/ is below its floor"; ok=0
fi
if [ -n "$scripts_pct" ] && awk -v a="$scripts_pct" -v b="$COVERAGE_FLOOR_SCRIPTS" 'BEGIN{exit !(a < b)}'; then
  echo "coverage: scripts/ is below its floor"; ok=0
fi
[ $suites_ok -eq 1 ] || { echo "coverage: a suite failed (figures above are still from the whole run)"; ok=0; }
[ $ok -eq 1 ]
