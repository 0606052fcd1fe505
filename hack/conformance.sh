#!/usr/bin/env bash
# critest, the CRI conformance suite, against a private floe (make conformance).
#
#   hack/conformance.sh [critest flags, e.g. --ginkgo.focus=Networking]
#
# Serves bin/floe on its own socket, state dir, run dir, inspect socket, CNI
# network (bridge floecf0, its own IPAM dir) and no metrics port, so it runs
# beside another floe; pulls through the conformance kit's mirrors
# (../shared/conformance, see its README); runs its critest.sh; stops the
# daemon and fails if the run left a netns, mount, veth, IP reservation or
# process behind. Exit status: non-zero when any spec failed or anything
# leaked. Output: $CONFORMANCE_OUT (default /tmp/floe-conformance-out):
# summary.txt, critest.log, floe.log.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${CONFORMANCE_KIT:-$ROOT/../shared/conformance}
OUT=${CONFORMANCE_OUT:-/tmp/floe-conformance-out}
[[ -x $KIT/critest.sh ]] || { echo "conformance kit not found at $KIT (set CONFORMANCE_KIT)" >&2; exit 2; }
[[ -x $ROOT/bin/floe && -x $ROOT/bin/floe-pod-init ]] || { echo "build first: make build" >&2; exit 2; }
command -v jq >/dev/null || { apt-get update -qq; apt-get install -y -qq jq; }

D=$(mktemp -d /tmp/floe-conformance.XXXXXX)
rm -rf "$OUT"; mkdir -p "$OUT" "$D/cni" "$D/ipam"
cat >"$D/cni/10-conformance.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "floe-conformance",
  "plugins": [
    {"type": "bridge", "bridge": "floecf0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$D/ipam", "routes": [{"dst": "0.0.0.0/0"}],
              "ranges": [[{"subnet": "10.86.0.0/16"}]]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOF

# The integration tests' lock: their host-wide leak checks must not see
# this run's pods, nor this one theirs. Children get the lock's fd closed
# (9>&-): a daemon that outlives this script (the kit's registry, started
# with setsid) would otherwise keep the lock held for ever.
exec 9>/run/floe-host-tests.lock
flock 9

registry_was_up=false
curl -sf -o /dev/null http://127.0.0.1:5000/v2/ && registry_was_up=true

snapshot() {
  { ip netns list | awk '{print "netns " $1}'
    ip -o link show type veth | awk -F': ' '{print "veth " $2}' | cut -d@ -f1
    awk '{print "mount " $5}' /proc/self/mountinfo
    # Zombies are not leaks: PID 1 reaps orphans in its own time.
    ps -eo pid=,stat=,comm= | awk '$2 !~ /Z/ && $3 ~ /^(conmon|runc|floe-pod-init)$/ {print "proc " $1 " " $3}'
  } | sort
}
snapshot >"$D/before"

floe_pid=""
cleanup() {
  [[ -n $floe_pid ]] && kill "$floe_pid" 2>/dev/null && wait "$floe_pid" 2>/dev/null || true
  cp "$D/floe.log" "$OUT/floe.log" 2>/dev/null || true
  if ! $registry_was_up && [[ -f /run/cri-conformance-registry.pid ]]; then
    kill "$(cat /run/cri-conformance-registry.pid)" 2>/dev/null || true
  fi
  # Only what this run made: anything still mounted under its dir.
  grep -o " $D[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$D"
}
trap cleanup EXIT

"$ROOT/bin/floe" serve --config /dev/null \
  --socket "$D/floe.sock" --state-dir "$D/state" --run-dir "$D/run" \
  --inspect-socket "$D/inspect.sock" --metrics-address "" \
  --cni-config-dir "$D/cni" --registries-config "$KIT/registries.conf" \
  --log-level debug >"$D/floe.log" 2>&1 9>&- &
floe_pid=$!
for _ in $(seq 100); do [[ -S $D/floe.sock ]] && break; sleep 0.1; done
[[ -S $D/floe.sock ]] || { tail -30 "$D/floe.log"; echo "floe did not start" >&2; exit 1; }

status=0
"$KIT/critest.sh" "unix://$D/floe.sock" "$OUT" "$@" 9>&- || status=$?

kill "$floe_pid"; wait "$floe_pid" || true; floe_pid=""
# Every pod critest made is gone: a pod's leftovers are a failure too.
sleep 1
snapshot >"$D/after"
leaks=$(comm -13 "$D/before" "$D/after" || true)
if [[ -n $leaks ]] || [[ -n $(ls -A "$D/ipam/floe-conformance" 2>/dev/null | grep -v '^last_reserved_ip\|^lock$') ]]; then
  echo "conformance run left things behind:" >&2
  echo "$leaks" >&2
  ls -A "$D/ipam/floe-conformance" 2>/dev/null >&2 || true
  status=1
fi
tail -1 "$OUT/summary.txt" 2>/dev/null || true
exit $status
