#!/usr/bin/env bash
# `make image`: builds the container image (default tag moonkeep:local) with
# podman, from the repository's own files: tracked and new ones, never the
# git-ignored build trees, node_modules or var/ of this checkout, so the
# context is what a clean clone holds. On the locally made Debian base
# (tools/debian-base.sh), in docker format (the OCI format has no
# HEALTHCHECK: podman would drop it without a word).
#
#   tools/image.sh [TAG]
#
# npm in the build stage may have to trust a TLS-intercepting proxy: the CA
# file in BUILD_EXTRA_CA goes in as the build secret `extra_ca`, mounted for
# the one step that runs npm and never stored in a layer. Default: what this
# machine's own Node trusts beyond its bundle ($NODE_EXTRA_CA_CERTS), else
# the system bundle when the machine added CAs of its own
# (/usr/local/share/ca-certificates).
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-moonkeep:local}

tools/debian-base.sh

context=$(mktemp -d /var/tmp/moonkeep-context.XXXXXX)
trap 'rm -rf "$context"' EXIT
git ls-files -z --cached --others --exclude-standard \
  | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -x -C "$context"

build_args=(--build-arg "MOONKEEP_VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo unknown)")
extra_ca=${BUILD_EXTRA_CA:-${NODE_EXTRA_CA_CERTS:-}}
if [ -z "$extra_ca" ] && compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  extra_ca=/etc/ssl/certs/ca-certificates.crt
fi
if [ -n "$extra_ca" ] && [ -f "$extra_ca" ]; then
  build_args+=(--secret "id=extra_ca,src=$extra_ca")
fi

# --pull=never: the base is local, and no registry is reachable anyway
tools/podman.sh build --format docker --network host --pull=never \
  "${build_args[@]}" -t "$tag" "$context"
size=$(tools/podman.sh image inspect --format '{{.Size}}' "$tag")
echo "image: $tag, $((size / 1024 / 1024)) MiB" >&2
