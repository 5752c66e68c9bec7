#!/usr/bin/env bash
# Installs the Debian packages listed in vendor/debian-packages.txt that are
# not installed yet. Idempotent: a machine that has everything runs no apt-get.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t wanted < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/debian-packages.txt" | awk '{print $1}')
missing=()
for pkg in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
  echo "vendor/install.sh: installing ${missing[*]}"
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# `npm ci` into DIR/node_modules unless it holds exactly what DIR's
# package-lock.json pins: a stamp of the lock file is kept beside what it
# installed, so a changed pin is installed again.
npm_ci_locked() { # DIR WHAT
  local dir=$1 what=$2 stamp=$1/node_modules/.moonkeep-lock.sha256 want
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  if ! command -v npm >/dev/null 2>&1; then
    $sudo apt-get install -y -q --no-install-recommends npm
  fi
  echo "vendor/install.sh: installing $what"
  npm ci --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
}

# Front-end assets (Swagger UI) from the npm registry into the git-ignored
# vendor/node_modules.
npm_ci_locked "$here" "the Swagger UI assets"

# The browser spec's driver: playwright-core only, which drives Debian's
# chromium and downloads no browser of its own (1.61, the last release that
# runs on Debian 12's Node 18).
npm_ci_locked "$here/../spec/browser" "playwright-core for the browser spec"

# The linters that come from npm: workflow and CloudFormation validators,
# WebAssembly and JSON only, nothing fetched at run time.
npm_ci_locked "$here/../tools/lint" "the npm linters (tools/lint)"
