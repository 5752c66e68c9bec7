#!/usr/bin/env bash
# Makes the Debian 12 base images locally: no image registry is reachable
# from the development and CI machines, Debian's package archive is. A
# debootstrap --variant=minbase of bookworm (the package set of the official
# images), imported into podman's storage as
#   debian:bookworm       as debootstrap leaves it: `make test-fresh`'s pristine machine
#   debian:bookworm-slim  less documentation, manuals and translations, now and
#                         for every later install (dpkg path-exclude, as the
#                         official slim image): the Dockerfile's FROM
#
#   tools/debian-base.sh [TAG]     make TAG (default debian:bookworm-slim) unless it exists
#
# The mirror is the one this machine's apt already uses (its first bookworm
# source), so no archive host is written in the repository; MIRROR overrides.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tag=${1:-debian:bookworm-slim}
suite=bookworm

if "$here/podman.sh" image exists "$tag"; then exit 0; fi

apt_mirror() {
  # deb822 (.sources) first, then one-line sources.list entries
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$suite" '
      /^[[:space:]]*$/ { if (uri != "" && suites ~ ("(^| )" suite "( |$)")) { print uri; exit } uri = ""; suites = ""; next }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { $1 = ""; suites = $0; sub(/^ /, "", suites) }
      END { if (uri != "" && suites ~ ("(^| )" suite "( |$)")) print uri }
    ' "$f"
  done
  { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } \
    | awk -v suite="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) while ($i !~ /\]$/) i++; if ($2 ~ /^\[/) i++; if ($(i + 1) == suite) print $i }'
}

mirror=${MIRROR:-$(apt_mirror | head -n 1)}
[ -n "$mirror" ] || { echo "debian-base: no $suite source in /etc/apt; set MIRROR" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debian-base: debootstrap is missing (make deps)" >&2; exit 1; }

root=$(mktemp -d /var/tmp/moonkeep-debian-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "debian-base: debootstrap $suite from $mirror" >&2
debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.log" 2>&1 \
  || { tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# what the official slim image also leaves out: the package lists and caches
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
case "$tag" in
  *-slim)
    cat >"$root/etc/dpkg/dpkg.cfg.d/moonkeep-slim" <<'SLIM'
# as the official slim images: no documentation beyond copyright files
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
SLIM
    find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    rm -rf "$root"/usr/share/{man,info,groff,lintian,locale}/*
    ;;
esac
tar -C "$root" --numeric-owner -c . \
  | "$here/podman.sh" import --change 'CMD ["bash"]' - "$tag" >/dev/null
echo "debian-base: made $tag" >&2
