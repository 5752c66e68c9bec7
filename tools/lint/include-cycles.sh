#!/usr/bin/env bash
# tools/lint/include-cycles.sh — the include graph of host/ points down.
#
# A module is a .c file with its .h (host/base/log.c + host/base/log.h is
# "base/log"); module A depends on module B when A's .c or .h includes B's
# header. Two checks:
#
#   layers  a module includes only headers of its own layer or of a layer
#           below it: base < lua < bind < server (docs/architecture.md,
#           "Layers"); host/module/luaopen.c (the spec module host.so)
#           stands above bind and below server.
#   cycles  no module depends on itself through others (tsort finds them).
#
# Prints every edge that breaks a layer rule and every cycle, then one line
# "include-cycles: N modules, N edges, N layer violations, N cycles".
# Exits 1 when there is a violation or a cycle.
set -euo pipefail
cd "$(dirname "$0")/../.."

rank() {
  case "$1" in
    base/*) echo 0 ;;
    lua/*) echo 1 ;;
    bind/*) echo 2 ;;
    module/*) echo 3 ;;
    server/*) echo 4 ;;
    *) echo 9 ;;
  esac
}

edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
modules=0
for f in $(git ls-files --cached --others --exclude-standard -- 'host/*.c' 'host/*.h' | sort -u); do
  [ -f "$f" ] || continue
  from=${f#host/}
  from=${from%.*}
  while read -r inc; do
    to=${inc%.h}
    # a relative include ("../bind/db.h") names the folder from the file's own
    case "$to" in ../*) to=${to#../} ;; esac
    [ "$to" = "$from" ] && continue
    [ -f "host/$inc" ] || [ -f "host/${inc#../}" ] || continue
    echo "$from $to"
  done < <(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]+"([^"]+)".*/\1/p' "$f")
done | sort -u >"$edges"
modules=$(git ls-files --cached --others --exclude-standard -- 'host/*.c' 'host/*.h' | sed -E 's#^host/##; s#\.[ch]$##' | sort -u | wc -l)

violations=0
while read -r from to; do
  if [ "$(rank "$to")" -gt "$(rank "$from")" ]; then
    echo "host/$from includes host/$to.h: a lower layer may not include a higher one"
    violations=$((violations + 1))
  fi
done <"$edges"

# tsort prints "tsort: -: input contains a loop:" and the loop's members
# for each loop it breaks.
cycles=0
loops=$(tsort "$edges" 2>&1 >/dev/null || true)
if [ -n "$loops" ]; then
  cycle=""
  while IFS= read -r line; do
    case "$line" in
      *"input contains a loop"*)
        [ -n "$cycle" ] && { echo "cycle:$cycle"; cycles=$((cycles + 1)); }
        cycle="" ;;
      *) cycle="$cycle ${line#tsort: }" ;;
    esac
  done <<<"$loops"
  [ -n "$cycle" ] && { echo "cycle:$cycle"; cycles=$((cycles + 1)); }
fi

echo "include-cycles: $modules modules, $(wc -l <"$edges") edges, $violations layer violations, $cycles cycles"
[ "$violations" -eq 0 ] && [ "$cycles" -eq 0 ]
