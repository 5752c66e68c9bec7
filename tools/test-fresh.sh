#!/usr/bin/env bash
# `make test-fresh`: the proof that a fresh Debian 12 machine needs nothing
# but the repository. A pristine container (tools/debian-base.sh's
# debian:bookworm: debootstrap minbase, nothing installed) gets a clean clone
# of HEAD under /root (mode 700, as on Debian), plus git and make, the two
# tools a person needs to have cloned and typed `make`; then, as root:
#
#   1. `make test`: vendor/install.sh installs every other package, then every
#      suite runs (the image and compose specs skip themselves: no engine
#      inside an engine; they run on the host);
#   2. `make run` from another clone in a `mktemp -d` folder (mode 700):
#      the embedded PostgreSQL must come up (relocated under /var/lib/moonkeep)
#      and GET /healthz answer 200; then SIGTERM, and the cluster is stopped.
#
# The container uses the host's network (the package registries, loopback)
# and this machine's own TLS set-up (the CAs in /usr/local/share/ca-certificates
# and NODE_EXTRA_CA_CERTS), as a fresh machine here has them. It gets two
# capabilities beyond podman's defaults: SYS_PTRACE, since LeakSanitizer stops
# the threads of the process it checks with ptrace; NET_ADMIN, since this
# kernel wants it for the socket filter of a drain without resets
# (docs/architecture.md, "Draining without resets"). Ends with
# "fresh: N passed, N failed" (make test's counts, and one for `make run`).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/debian-base.sh debian:bookworm

work=$(mktemp -d /var/tmp/moonkeep-fresh.XXXXXX)
name=moonkeep-fresh-$$
cleanup() {
  tools/podman.sh rm -f -t 0 "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
git clone --quiet --no-hardlinks "$PWD" "$work/moonkeep"
run_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# The machine's own CAs, and Node told to trust them (the system bundle
# holds them once ca-certificates is installed in there)
env_args=()
ca_args=()
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  ca_args=(-v /usr/local/share/ca-certificates:/usr/local/share/ca-certificates:ro)
  env_args=(-e NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt)
fi

# shellcheck disable=SC2016 # expanded inside the container
inside='
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends git make >/dev/null || exit 1
cp -a /src /root/moonkeep && cd /root/moonkeep || exit 1
echo "== make test (in the fresh container)"
make test 2>&1 | tee /root/make-test.log
test_rc=${PIPESTATUS[0]}

echo "== make run (a clone under a mode-700 folder)"
private=$(mktemp -d)
git clone --quiet /root/moonkeep "$private/moonkeep" && cd "$private/moonkeep" || exit 1
PORT='"$run_port"' HOST=127.0.0.1 setsid make run >"$private/run.log" 2>&1 &
served=0
for _ in $(seq 600); do
  if curl -fsS -o /dev/null "http://127.0.0.1:'"$run_port"'/healthz" 2>/dev/null; then served=1; break; fi
  kill -0 $! 2>/dev/null || break
  sleep 0.5
done
kill -TERM -- -$! 2>/dev/null
wait $! 2>/dev/null
run_ok=1
if [ "$served" != 1 ]; then echo "make run: /healthz never answered"; tail -n 30 "$private/run.log"; run_ok=0; fi
if [ ! -L var/pg ] || [ -e var/pg/data/postmaster.pid ]; then
  echo "make run: var/pg is not a link to a stopped cluster"; ls -l var; run_ok=0
fi
[ "$run_ok" = 1 ] && echo "make run: served /healthz from $private (mode $(stat -c %a "$private")), data in $(readlink var/pg), stopped"

summary=$(grep -aE "^[0-9]+ passed, [0-9]+ failed" /root/make-test.log | tail -n 1)
passed=$(echo "$summary" | grep -oE "^[0-9]+" || echo 0)
failed=$(echo "$summary" | grep -oE "[0-9]+ failed" | grep -oE "[0-9]+" || echo 0)
[ -n "$summary" ] || failed=$((failed + 1))
[ "$test_rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=$((failed + 1))
if [ "$run_ok" = 1 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
echo "fresh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
'

tools/podman.sh run --name "$name" --network host --cap-add SYS_PTRACE --cap-add NET_ADMIN --shm-size 1g \
  "${env_args[@]}" "${ca_args[@]}" -v "$work/moonkeep:/src:ro" \
  debian:bookworm bash -c "$inside"
