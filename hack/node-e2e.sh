#!/usr/bin/env bash
# SIG Node's e2e suite (test/e2e_node, [NodeConformance] without
# Serial/Slow/Flaky/Disruptive/Feature) against a private floe, or, for
# comparison, against Debian's containerd started the same way (make node-e2e).
#
#   [RUNTIME=floe|containerd] [FOCUS=re] [SKIP=re] [SPECS=file] [PROCS=4]
#   [LABELS=ginkgo-label-filter] [FEATURE_GATES=A=true,B=true] [NODE_E2E_KNOWN=file]
#   hack/node-e2e.sh [ginkgo flags...]
#
# SPECS names a file of full spec names, one a line (e.g. failed.txt of an
# earlier run): only those run, e.g. to see which of floe's failures fail on
# containerd as well.
# Builds (once, cached) the kubelet, e2e_node.test, ginkgo and agnhost
# (hack/build-node-e2e.sh), pushes the suite's look-alike images to the
# conformance registry (../shared/conformance/node-e2e/images.sh), serves the
# runtime on its own socket, state and CNI network (bridge floene0,
# 10.87.0.0/16), and runs the kit's node-e2e/run.sh under the integration
# tests' host lock. Afterwards: the kit's cleanup.sh, the runtime stopped, and
# a check that nothing was left (netns, veth, mount, IP, runtime process).
#
# Exit status: non-zero when a spec failed that is not listed in
# hack/node-e2e-host-failures.txt (specs shown to fail on containerd here
# too, with the reason and the failure text they are excused for), or failed
# with another message than its entry names; when the suite's setup failed,
# fewer specs ran than were focused (or SPECS names specs ginkgo did not
# find); or when anything leaked.
# Output: $NODE_E2E_OUT (default /tmp/floe-node-e2e-out/$RUNTIME):
# summary.txt, e2e.log, report.json, the runtime's log.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${CONFORMANCE_KIT:-$ROOT/../shared/conformance}
RUNTIME=${RUNTIME:-floe}
OUT=${NODE_E2E_OUT:-/tmp/floe-node-e2e-out/$RUNTIME}
KNOWN=${NODE_E2E_KNOWN:-$ROOT/hack/node-e2e-host-failures.txt}
[[ -x $KIT/node-e2e/run.sh ]] || { echo "conformance kit not found at $KIT (set CONFORMANCE_KIT)" >&2; exit 2; }
case $RUNTIME in
  floe) [[ -x $ROOT/bin/floe && -x $ROOT/bin/floe-pod-init && -x $ROOT/bin/floe-pod-reaper ]] || { echo "build first: make build" >&2; exit 2; } ;;
  containerd) command -v containerd >/dev/null || { apt-get update -qq; apt-get install -y -qq containerd; } ;;
  *) echo "RUNTIME must be floe or containerd" >&2; exit 2 ;;
esac
command -v jq >/dev/null || { apt-get update -qq; apt-get install -y -qq jq; }
BIN=$("$ROOT/hack/build-node-e2e.sh")

. "$ROOT/hack/lib/private-floe.sh"
D=$(mktemp -d /tmp/floe-node-e2e.XXXXXX)
chmod 711 "$D"   # pods in a user namespace: their root must reach the run dir
rm -rf "$OUT"; mkdir -p "$OUT"
write_cni_conflist floe-node-e2e floene0 10.87.0.0/16

exec 9>/run/floe-host-tests.lock
flock 9

# Started without the lock's descriptor: a registry that outlives this run
# must not hold the lock for ever.
registry_was_up=false
curl -sf -o /dev/null http://127.0.0.1:5000/v2/ && registry_was_up=true
"$KIT/registry-up.sh" 9>&- >/dev/null
curl -sf -o /dev/null http://127.0.0.1:5000/v2/e2e-test-images/nonewprivs/manifests/1.3 \
  -H 'Accept: application/vnd.oci.image.manifest.v1+json' || "$KIT/images-build.sh" >"$OUT/images-build.log" 2>&1
curl -sf -o /dev/null http://127.0.0.1:5000/v2/e2e-test-images/agnhost/manifests/2.66.1 \
  -H 'Accept: application/vnd.oci.image.manifest.v1+json' || AGNHOST=$BIN/agnhost "$KIT/node-e2e/images.sh" >"$OUT/images.log" 2>&1
host_snapshot >"$D/before"

floe_pid="" ctrd_pid="" registry_was_up=${registry_was_up:-true}
cleanup() {
  "$KIT/node-e2e/cleanup.sh" || true
  stop_private_floe
  if [[ -n $ctrd_pid ]]; then stop_containerd; fi
  cp "$D/floe.log" "$D/containerd.log" "$OUT/" 2>/dev/null || true
  if ! $registry_was_up && [[ -f /run/cri-conformance-registry.pid ]]; then
    kill "$(cat /run/cri-conformance-registry.pid)" 2>/dev/null || true
  fi
  unmount_under "$D"
  rm -rf "$D"
}
trap cleanup EXIT

# containerd 1.6 as CRI-O's and floe's peer: private root, state and socket,
# the same CNI network, registry mirrors as hosts.toml (see
# shared/notes/host-and-libraries.md for why oom_score_adj is restricted).
start_containerd() {
  mkdir -p "$D/certs.d"
  for r in registry.k8s.io k8s.gcr.io gcr.io docker.io quay.io; do
    mkdir -p "$D/certs.d/$r"
    printf 'server = "https://%s"\n[host."http://127.0.0.1:5000"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n' "$r" >"$D/certs.d/$r/hosts.toml"
  done
  cat >"$D/containerd.toml" <<CONF
version = 2
root = "$D/ctrd-root"
state = "$D/ctrd-state"
[grpc]
  address = "$D/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = "registry.k8s.io/pause:3.10.2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$D/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$D/certs.d"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.test-handler]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.test-handler.options]
      SystemdCgroup = false
CONF
  containerd --config "$D/containerd.toml" >"$D/containerd.log" 2>&1 &
  ctrd_pid=$!
  for _ in $(seq 100); do [[ -S $D/containerd.sock ]] && break; sleep 0.1; done
  [[ -S $D/containerd.sock ]] || { tail -30 "$D/containerd.log"; echo "containerd did not start" >&2; return 1; }
}
# Its shims outlive it: they are found by their -address argument.
stop_containerd() {
  kill "$ctrd_pid" 2>/dev/null || true; wait "$ctrd_pid" 2>/dev/null || true; ctrd_pid=""
  pgrep -f -- "-address $D/containerd.sock" | xargs -r kill -9 2>/dev/null || true
}

# The suite's RuntimeClass specs (PodOverhead) ask for the handler
# "test-handler", which SIG Node's CI configures on every runtime as plain
# runc; so do both runtimes here.
if [[ $RUNTIME == floe ]]; then
  printf '[runtimes.test-handler]\nruntime_path = "/usr/sbin/runc"\nruntime_type = "oci"\nmonitor_path = "/usr/bin/conmon"\n' >"$D/floe.toml"
  # Its own image store too: the suite's images (pause:3.10.2 is the
  # kit's pause:3.9 under another tag) must not stay in the node's store
  # and change what critest finds there.
  FLOE_CONFIG=$D/floe.toml start_private_floe --registries-config "$KIT/registries.conf" --cgroup-manager cgroupfs \
    --storage-root "$D/storage" --storage-run-root "$D/storage-run"
  ep=unix://$D/floe.sock
else
  start_containerd
  ep=unix://$D/containerd.sock
fi

if [[ -n ${SPECS:-} ]]; then
  # An exact match of each name (ginkgo puts the suite's description before
  # it), regex metacharacters escaped.
  FOCUS=$(sed -e 's/[][\\.^$*+?(){}|/]/\\&/g' -e 's/^/(^| )/' -e 's/$/$/' "$SPECS" | paste -sd'|')
  export FOCUS
fi
# FEATURE_GATES (A=true,B=true) reach the kubelet and the API server the
# suite starts through the test binary's own flags; the kit's run.sh hands
# the ginkgo CLI a binary and no way to add them, so it gets a wrapper of
# the binary that adds them (the kubelet is found beside the real one).
if [[ -n ${FEATURE_GATES:-} ]]; then
  mkdir -p "$D/bin"
  for f in kubelet ginkgo agnhost; do ln -sf "$BIN/$f" "$D/bin/$f"; done
  printf '#!/bin/sh\nexec %q "$@" --feature-gates=%q --service-feature-gates=%q\n' \
    "$BIN/e2e_node.test" "$FEATURE_GATES" "$FEATURE_GATES" >"$D/bin/e2e_node.test"
  chmod 0755 "$D/bin/e2e_node.test"
  BIN=$D/bin
fi
# LABELS: a ginkgo label filter (the suite's Feature:/FeatureGate: labels).
label_args=()
[[ -z ${LABELS:-} ]] || label_args=(--label-filter "$LABELS")
start=$(date +%s)
BIN=$BIN PROCS=${PROCS:-4} "$KIT/node-e2e/run.sh" "$ep" "$OUT/run" "${label_args[@]}" "$@" >"$OUT/e2e.log" 2>&1 || true
secs=$(( $(date +%s) - start ))
"$KIT/node-e2e/cleanup.sh" || true
report=$OUT/run/report.json
[[ -s $report ]] || { tail -30 "$OUT/e2e.log"; echo "the suite wrote no report" >&2; exit 1; }

# Pods the kubelet did not remove before it stopped are removed here, so
# the leak check below sees what the runtime itself leaves behind.
for pod in $("$KIT/bin/crictl" --runtime-endpoint "$ep" pods -q 2>/dev/null); do
  "$KIT/bin/crictl" --runtime-endpoint "$ep" stopp "$pod" >/dev/null 2>&1 || true
  "$KIT/bin/crictl" --runtime-endpoint "$ep" rmp "$pod" >/dev/null 2>&1 || true
done
if [[ $RUNTIME == floe ]]; then stop_private_floe; else stop_containerd; fi
sleep 1

status=0
host_snapshot >"$D/after"
leaks=$( { comm -13 "$D/before" "$D/after"; ipam_left floe-node-e2e | sed 's/^/ip /'; } || true)
[[ -z $leaks ]] || status=1

its='[.[].SpecReports[] | select(.LeafNodeType=="It" and .NumAttempts>0)]'
first='((.Failure.Message // "") | split("\n") | map(select(length>0)) | .[0] // "" | .[0:500])'
name='"\(.ContainerHierarchyTexts | join(" ")) \(.LeafNodeText)"'
n() { jq "$its | map(select($1)) | length" "$report"; }
passed=$(n '.State=="passed"'); failed=$(n '.State!="passed" and .State!="skipped"'); skipped=$(n '.State=="skipped"')
ran=$((passed + failed + skipped))
# What ginkgo meant to run, and whether its suite-level nodes (the embedded
# API server, the kubelet's start) worked: a run that set nothing up, or
# ran fewer specs than it focused on, judged nothing and fails.
will=$(jq '[.[].PreRunStats.SpecsThatWillRun // 0] | add // 0' "$report")
setup=$(jq -r '.[].SpecReports[] | select(.LeafNodeType!="It" and .State!="passed" and .State!="skipped") | "\(.LeafNodeType): \(.State): \((.Failure.Message // "") | split("\n") | .[0] // "")"' "$report")
focused=""
[[ -z ${SPECS:-} ]] || focused=$(sed '/^$/d' "$SPECS" | sort -u | wc -l)
# Every failed spec with its first failure line, tab-separated.
jq -r "$its | .[] | select(.State!=\"passed\" and .State!=\"skipped\") | \"\($name)\t\($first)\"" "$report" | sort >"$D/failed.tsv"
cut -f1 "$D/failed.tsv" >"$OUT/failed.txt"
# The known list: groups separated by blank lines, each a '# reason'
# comment, a '# expect: TEXT' line (a piece of the first failure line the
# specs are excused for) and the full spec names. A listed spec that fails
# with another message is unexpected: it may hide a new defect.
awk -F'\t' '
  /^$/ { expect = ""; next }
  /^# expect: / { expect = substr($0, 11); next }
  /^#/ { next }
  { if (expect == "") { print "no # expect: line for " $0 > "/dev/stderr"; bad = 1 } print $0 "\t" expect }
  END { exit bad }' "$KNOWN" | sort -u >"$D/known.tsv" || { echo "$KNOWN: every listed spec needs the failure text it is excused for" >&2; exit 2; }
: >"$D/known-failed.txt"; : >"$OUT/unexpected.txt"; : >"$D/unexpected.tsv"
while IFS=$'\t' read -r spec msg; do
  expect=$(awk -F'\t' -v s="$spec" '$1 == s { print $2; exit }' "$D/known.tsv")
  if [[ -n $expect && $msg == *"$expect"* ]]; then
    echo "$spec" >>"$D/known-failed.txt"
  else
    echo "$spec" >>"$OUT/unexpected.txt"
    if [[ -n $expect ]]; then msg="$msg (listed, but excused only for: $expect)"; fi
    printf '%s | %s\n' "$spec" "$msg" >>"$D/unexpected.tsv"
  fi
done <"$D/failed.tsv"
{
  echo "# node e2e against $RUNTIME ($(date -u +%FT%TZ), ${secs}s) focus=${FOCUS:-NodeConformance} $*"
  echo; echo "## failed, not known to fail on containerd here (spec | first line)"
  cat "$D/unexpected.tsv"
  echo; echo "## failed, known to fail for any runtime on this host with the listed message (hack/node-e2e-host-failures.txt)"
  cat "$D/known-failed.txt"
  [[ -z $setup ]] || { echo; echo "## the suite's setup failed"; echo "$setup"; }
  [[ $ran -ge $will ]] || { echo; echo "## only $ran of the $will focused specs ran"; }
  [[ -z $focused || $will -ge $focused ]] || { echo; echo "## SPECS names $focused specs, ginkgo found $will"; }
  [[ -z $leaks ]] || { echo; echo "## left behind on the host"; echo "$leaks"; }
  echo; echo "$passed passed, $failed failed ($(wc -l <"$OUT/unexpected.txt") unexpected), $skipped skipped"
} >"$OUT/summary.txt"

sed -n '/^## failed, not known/,/^## failed, known/p' "$OUT/summary.txt" | head -40
sed -n '/^## the suite/,$p' "$OUT/summary.txt" | sed '$d' | head -20
[[ -z $leaks ]] || { echo "node e2e run left things behind:"; echo "$leaks"; } >&2
tail -1 "$OUT/summary.txt"
[[ -s $OUT/unexpected.txt ]] && status=1
[[ -z $setup ]] || status=1
[[ $ran -ge $will && $will -gt 0 ]] || status=1
[[ -z $focused || $will -ge $focused ]] || status=1
exit $status
