#!/usr/bin/env bash
# podman with the project's settings (tools/podman/containers.conf) and
# nothing else: every container command of the Makefile and the specs goes
# through here, so the machine's /etc is never edited.
#
#   tools/podman.sh ARGS...        podman ARGS
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CONTAINERS_CONF="$here/podman/containers.conf"
exec podman "$@"
