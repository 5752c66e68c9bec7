#!/usr/bin/env bash
# container-steps.sh — every step of the container image, in one place, so
# that the Dockerfile and the test suite run the same commands: the
# Dockerfile calls these sections, and spec/e2e/container_spec.lua runs the
# build and run sections on the host (into a temporary prefix).
#
#   build-packages               print the Debian packages the build stage needs
#   runtime-packages             print the Debian packages the run stage needs
#   build-deps                   apt-get install the build packages (build stage)
#   runtime-deps                 apt-get install the runtime packages (run stage)
#   build SRC PREFIX [BUILD_DIR] compile SRC and install the image's tree in PREFIX:
#                                  bin/moonkeep, bin/container-steps.sh, scripts/,
#                                  migrations/, swagger-ui/
#   check-runtime PREFIX         fail unless every library bin/moonkeep links is
#                                installed by a runtime package (or what they
#                                depend on), and the scripts load
#   user                         create the unprivileged user and its state folder
#   start [ARGS...]              (from PREFIX/bin) what the container runs: tini as
#                                PID 1, then `moonkeep ARGS` (default: serve)
#   healthcheck                  exit 0 when GET /healthz answers 200 on $PORT
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The run stage installs nothing else. libjwt0 is Debian's package of
# libjwt.so.0 (libjwt 1.10.2); lua-cjson is loaded by the VM, not linked;
# curl is for the health check; tini is PID 1.
RUNTIME_PACKAGES=(
  libluajit2-5.1-2 lua-cjson libevent-2.1-7 libevent-pthreads-2.1-7 libpq5 libjwt0
  libsodium23 libcurl4 ca-certificates tini curl
)

# Build packages: the lines of vendor/debian-packages.txt whose reason starts
# with "build", plus npm (for `npm ci` of the Swagger UI assets).
build_packages() {
  local list="$here/../vendor/debian-packages.txt"
  [ -f "$list" ] || list="$here/debian-packages.txt"
  sed -e 's/#.*//' "$list" | awk '$2 ~ /^build/ {print $1}'
  echo npm
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "$@"
  apt-get clean
  rm -rf /var/lib/apt/lists/*
}

# npm ci of vendor/package.json, unless the locked swagger-ui-dist is there
# already (a developer tree; the image's build context leaves node_modules out).
swagger_ui() {
  local vendor=$1
  local want have=""
  want=$(sed -n 's/.*"swagger-ui-dist": *"\([^"]*\)".*/\1/p' "$vendor/package.json" | head -n1)
  if [ -f "$vendor/node_modules/swagger-ui-dist/package.json" ]; then
    have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$vendor/node_modules/swagger-ui-dist/package.json" | head -n1)
  fi
  if [ "$have" != "$want" ]; then
    # the image build's optional extra CA (see tools/image.sh)
    if [ -f /run/secrets/extra_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/extra_ca; fi
    npm ci --prefix "$vendor" --ignore-scripts --no-audit --no-fund --loglevel=error
  fi
}

build() {
  local src prefix build_dir
  src=$(cd "$1" && pwd)
  prefix=$2
  build_dir=${3:-$src/build-image}
  cmake -S "$src" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    ${MOONKEEP_VERSION:+-DMOONKEEP_VERSION_STRING="$MOONKEEP_VERSION"} >/dev/null
  cmake --build "$build_dir" --target moonkeep -j "$(nproc)"
  swagger_ui "$src/vendor"

  rm -rf "$prefix"
  mkdir -p "$prefix/bin" "$prefix/swagger-ui"
  install -m 0755 "$build_dir/moonkeep" "$prefix/bin/moonkeep"
  strip --strip-debug "$prefix/bin/moonkeep"
  install -m 0755 "$here/container-steps.sh" "$prefix/bin/container-steps.sh"
  cp -R "$src/scripts" "$src/migrations" "$prefix/"
  find "$src/vendor/node_modules/swagger-ui-dist" -maxdepth 1 -type f \
    \( -name '*.js' -o -name '*.css' -o -name '*.png' -o -name '*.html' -o -name LICENSE \) \
    -exec cp {} "$prefix/swagger-ui/" \;
  chmod -R a+rX,go-w "$prefix"
}

# The packages every package in $@ depends on, themselves included, from the
# dpkg status database (works offline, with or without apt lists).
dependency_closure() {
  declare -A seen=()
  local queue=("$@") p deps alt
  while [ ${#queue[@]} -gt 0 ]; do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    [ -n "${seen[$p]:-}" ] && continue
    seen[$p]=1
    deps=$(dpkg-query -W -f='${Depends}, ${Pre-Depends}' "$p" 2>/dev/null || true)
    while IFS= read -r alt; do
      alt=$(echo "$alt" | sed -e 's/([^)]*)//g' -e 's/:any//g' -e 's/[[:space:]]//g')
      [ -n "$alt" ] && [ -z "${seen[$alt]:-}" ] && queue+=("$alt")
    done < <(echo "$deps" | tr ',|' '\n')
  done
  printf '%s\n' "${!seen[@]}"
}

# Prints "LIB PACKAGE" for each library path on stdin: the package that
# installed it (trying its /usr-merged twins), or "-" for none. One dpkg -S
# for all of them (it is slow per call).
owners_of() {
  local libs=() candidates=() lib
  while read -r lib; do
    libs+=("$lib")
    candidates+=("$lib" "/usr$lib" "${lib#/usr}" "$(readlink -f "$lib")")
  done
  declare -A owner=()
  local line pkg path
  while IFS= read -r line; do
    pkg=${line%%: /*}
    path=${line#"$pkg: "}
    owner[$path]=${pkg%%:*}
  done < <(dpkg -S "${candidates[@]}" 2>/dev/null || true)
  local i=0 c found
  for lib in "${libs[@]}"; do
    found=-
    for c in "${candidates[@]:i:4}"; do
      if [ -n "${owner[$c]:-}" ]; then found=${owner[$c]}; break; fi
    done
    echo "$lib $found"
    i=$((i + 4))
  done
}

check_runtime() {
  local prefix=$1 bin=$1/bin/moonkeep failed=0 lib pkg
  local missing
  missing=$(ldd "$bin" | grep 'not found' || true)
  if [ -n "$missing" ]; then
    echo "check-runtime: unresolved libraries:" >&2
    echo "$missing" >&2
    return 1
  fi
  declare -A allowed=()
  while read -r pkg; do allowed[$pkg]=1; done < <(dependency_closure "${RUNTIME_PACKAGES[@]}")
  for pkg in "${RUNTIME_PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
      echo "check-runtime: runtime package $pkg is not installed" >&2
      failed=1
    fi
  done
  while read -r lib pkg; do
    if [ "$pkg" = - ]; then
      echo "check-runtime: $lib belongs to no package" >&2
      failed=1
    elif [ -z "${allowed[$pkg]:-}" ]; then
      echo "check-runtime: $lib comes from $pkg, which no runtime package pulls in" >&2
      failed=1
    fi
  done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | owners_of)
  # the VM loads lua-cjson at run time: the scripts' self-check needs it
  if ! SCRIPTS_DIR="$prefix/scripts" "$bin" check >/dev/null; then
    echo "check-runtime: the installed scripts do not load" >&2
    failed=1
  fi
  return $failed
}

make_user() {
  useradd --no-log-init --uid 10001 --user-group --home-dir /var/lib/moonkeep --create-home \
    --shell /usr/sbin/nologin moonkeep
  install -d -o moonkeep -g moonkeep -m 0750 /var/lib/moonkeep/outbox
}

start() {
  local prefix
  prefix=$(cd "$here/.." && pwd)
  export SCRIPTS_DIR=${SCRIPTS_DIR:-$prefix/scripts}
  export MIGRATIONS_DIR=${MIGRATIONS_DIR:-$prefix/migrations}
  export SWAGGER_UI_DIR=${SWAGGER_UI_DIR:-$prefix/swagger-ui}
  [ $# -gt 0 ] || set -- serve
  # tini is PID 1: it forwards SIGTERM to the master (which drains) and
  # reaps; -s also makes it the subreaper when it is not PID 1 (tests).
  exec tini -s -- "$prefix/bin/moonkeep" "$@"
}

healthcheck() {
  exec curl -fsS --max-time 3 -o /dev/null "http://127.0.0.1:${PORT:-5000}/healthz"
}

step=${1:-}
[ $# -gt 0 ] && shift
case "$step" in
  build-packages) build_packages ;;
  runtime-packages) printf '%s\n' "${RUNTIME_PACKAGES[@]}" ;;
  build-deps) mapfile -t pkgs < <(build_packages); apt_install "${pkgs[@]}" ;;
  runtime-deps) apt_install "${RUNTIME_PACKAGES[@]}" ;;
  build) [ $# -ge 2 ] || { echo "usage: $0 build SRC PREFIX [BUILD_DIR]" >&2; exit 2; }; build "$@" ;;
  check-runtime) [ $# -eq 1 ] || { echo "usage: $0 check-runtime PREFIX" >&2; exit 2; }; check_runtime "$1" ;;
  user) make_user ;;
  start) start "$@" ;;
  healthcheck) healthcheck ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
