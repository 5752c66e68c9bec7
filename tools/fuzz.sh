#!/usr/bin/env bash
# tools/fuzz.sh — builds the libFuzzer harnesses of fuzz/ (fuzz/Makefile,
# clang with ASan and UBSan, into build-fuzz/) and runs each for
# FUZZ_SECONDS (default 60) from its seed corpus in fuzz/corpus/<target>/.
# New inputs go to build-fuzz/corpus/<target>/ (the seeds stay as they are);
# a crash leaves its input in build-fuzz/artifacts/. Prints one line per
# target ("fuzz <target>: ok, N runs, cov C, ft F") and exits 1 when any
# target found something.
#
#   tools/fuzz.sh                 every target
#   tools/fuzz.sh json_fuzz ...   these targets
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
seconds=${FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request_fuzz jwt_fuzz db_value_fuzz json_fuzz)

if ! make -s -C fuzz -j "$(nproc)" >build-fuzz.log 2>&1; then
  cat build-fuzz.log
  rm -f build-fuzz.log
  echo "fuzz build: failed"
  exit 1
fi
rm -f build-fuzz.log

failed=0
for t in "${targets[@]}"; do
  name=${t%_fuzz}
  work=build-fuzz/corpus/$name
  mkdir -p "$work" build-fuzz/artifacts
  dict=()
  [ -f "fuzz/$name.dict" ] && dict=(-dict="fuzz/$name.dict")
  log=build-fuzz/$name.log
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} LSAN_OPTIONS=suppressions=fuzz/lsan.supp \
    "build-fuzz/$t" "$work" "fuzz/corpus/$name" "${dict[@]}" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$name-" >"$log" 2>&1
  rc=$?
  runs=$(grep -aoE 'stat::number_of_executed_units: [0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  cov=$(grep -aoE 'cov: [0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+' || echo 0)
  ft=$(grep -aoE 'ft: [0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+' || echo 0)
  if [ "$rc" -eq 0 ]; then
    echo "fuzz $t: ok, $runs runs in ${seconds}s, cov $cov, ft $ft"
  else
    failed=$((failed + 1))
    echo "fuzz $t: FAILED (exit $rc), $runs runs, cov $cov, ft $ft; log: $log"
    grep -aE 'ERROR|invariant failed|SUMMARY|Test unit written' "$log" | head -n 10
  fi
done
[ "$failed" -eq 0 ]
