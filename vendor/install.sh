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
# vendor/swagger-ui/package-lock.json, into a git-ignored node_modules.
if [ -f "$here/swagger-ui/package.json" ] && [ ! -d "$here/swagger-ui/node_modules/swagger-ui-dist" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    $sudo apt-get install -y -q --no-install-recommends npm
  fi
  echo "vendor/install.sh: installing Swagger UI assets"
  if [ -f "$here/swagger-ui/package-lock.json" ]; then
    npm ci --prefix "$here/swagger-ui" --no-audit --no-fund --loglevel=error
  else
    npm install --prefix "$here/swagger-ui" --no-audit --no-fund --loglevel=error
  fi
fi
