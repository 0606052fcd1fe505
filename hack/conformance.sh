#!/usr/bin/env bash
# critest, the CRI conformance suite, against a private floe (make conformance).
#
#   hack/conformance.sh [critest flags, e.g. --ginkgo.focus=Networking]
#
# Serves bin/floe on its own socket, state dir, run dir, inspect socket, NRI
# socket, CNI network (bridge floecf0, its own IPAM dir) and no metrics port,
# so it runs beside another floe; critest's NRI specs connect their plugins
# to that NRI socket; pulls through the conformance kit's mirrors
# (../shared/conformance, see its README); runs its critest.sh; stops the
# daemon and fails if the run left a netns, mount, veth, IP reservation or
# process behind. Exit status: non-zero when any spec failed or anything
# leaked. Output: $CONFORMANCE_OUT (default /tmp/floe-conformance-out):
# summary.txt, critest.log, floe.log.
#
# RUNTIME_HANDLER=runsc runs the specs in gVisor pods: floe gets a
# [runtimes.runsc] handler (runtime_type "sandboxed", its own state root
# under the run's dir, --network=host) and critest --runtime-handler=runsc.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${CONFORMANCE_KIT:-$ROOT/../shared/conformance}
OUT=${CONFORMANCE_OUT:-/tmp/floe-conformance-out}
[[ -x $KIT/critest.sh ]] || { echo "conformance kit not found at $KIT (set CONFORMANCE_KIT)" >&2; exit 2; }
[[ -x $ROOT/bin/floe && -x $ROOT/bin/floe-pod-init && -x $ROOT/bin/floe-pod-reaper ]] || { echo "build first: make build" >&2; exit 2; }
command -v jq >/dev/null || { apt-get update -qq; apt-get install -y -qq jq; }

. "$ROOT/hack/lib/private-floe.sh"
D=$(mktemp -d /tmp/floe-conformance.XXXXXX)
# Searchable by others: containers of pods in a user namespace are
# mounted by their unprivileged root, which must reach the run dir.
chmod 711 "$D"
rm -rf "$OUT"; mkdir -p "$OUT"
write_cni_conflist floe-conformance floecf0 10.86.0.0/16

# The integration tests' lock: their host-wide leak checks must not see
# this run's pods, nor this one theirs. Children get the lock's fd closed
# (9>&-): a daemon that outlives this script (the kit's registry, started
# with setsid) would otherwise keep the lock held for ever.
exec 9>/run/floe-host-tests.lock
flock 9

registry_was_up=false
curl -sf -o /dev/null http://127.0.0.1:5000/v2/ && registry_was_up=true
# Started here, without the lock's descriptor (critest.sh would start it
# with fd 9 inherited): a registry that outlives this run must not hold the
# lock for ever.
"$KIT/registry-up.sh" 9>&- >/dev/null
host_snapshot >"$D/before"

floe_pid=""
cleanup() {
  stop_private_floe
  cp "$D/floe.log" "$OUT/floe.log" 2>/dev/null || true
  if ! $registry_was_up && [[ -f /run/cri-conformance-registry.pid ]]; then
    kill "$(cat /run/cri-conformance-registry.pid)" 2>/dev/null || true
  fi
  # Only what this run made: anything still mounted under its dir.
  unmount_under "$D"
  rm -rf "$D"
}
trap cleanup EXIT

# NRI runs with its defaults: the specs hold a plugin's Synchronize open
# for 2 s on purpose, which the synchronisation's own budget (the 5 s
# registration_timeout) allows.
: >"$D/floe.toml"
handler_flags=()
case ${RUNTIME_HANDLER:-} in
"" | runc) ;;
runsc)
  command -v runsc >/dev/null || { echo "RUNTIME_HANDLER=runsc: runsc is not installed (hack/install-deps.sh)" >&2; exit 2; }
  # runsc 20221219's own network stack refuses this kernel (it takes every
  # netns for the host's): --network=host uses the pod's netns through the
  # host kernel's stack (docs/runtime-handlers.md). --oci-seccomp: runsc
  # applies the pods' seccomp profiles inside the sandbox (it ignores them
  # by default, gVisor being the sandbox).
  cat >>"$D/floe.toml" <<EOF
[runtimes.runsc]
runtime_path = "$(command -v runsc)"
runtime_type = "sandboxed"
runtime_root = "$D/runsc"
runtime_args = ["--network=host", "--oci-seccomp"]
monitor_path = "/usr/bin/conmon"
EOF
  handler_flags=(--runtime-handler=runsc)
  ;;
*) echo "RUNTIME_HANDLER=$RUNTIME_HANDLER: only runc and runsc are set up here" >&2; exit 2 ;;
esac
FLOE_CONFIG=$D/floe.toml start_private_floe --registries-config "$KIT/registries.conf"

status=0
# 9>&-: the lock stays with this shell only. A child keeping the fd (the
# registry critest.sh may start and leave running, or conmon through
# floe) would hold the host lock after this script ends.
"$KIT/critest.sh" "unix://$D/floe.sock" "$OUT" --nri-socket "$D/nri.sock" "${handler_flags[@]}" "$@" 9>&- || status=$?

stop_private_floe
# Every pod critest made is gone: a pod's leftovers are a failure too.
sleep 1
host_snapshot >"$D/after"
leaks=$(comm -13 "$D/before" "$D/after" || true)
if [[ -n $leaks ]] || [[ -n $(ipam_left floe-conformance) ]]; then
  echo "conformance run left things behind:" >&2
  echo "$leaks" >&2
  ipam_left floe-conformance >&2
  status=1
fi
# A run in which nothing passed judged nothing (critest could not reach the
# daemon, or the focus matched no spec): that is a failure too, whatever
# critest.sh's own exit status says.
last=$(tail -1 "$OUT/summary.txt" 2>/dev/null || true)
echo "$last"
passed=$(sed -n 's/^\([0-9][0-9]*\) passed.*/\1/p' <<<"$last")
if [[ -z $passed || $passed -eq 0 ]]; then
  echo "conformance: no spec passed (summary: ${last:-none})" >&2
  status=1
fi
exit $status
