#!/usr/bin/env bash
# Runs floe (bin/floe of this tree) and a standalone kubelet with the static
# pod manifests given, waits until every container runs (or 3 minutes), prints
# the containers as the kubelet reports them, then removes everything.
#   KUBELET=/var/cache/floe/kubelet-v1.37.2/kubelet hack/kubelet-static-pod.sh pod.yaml...
# Run it under the host lock: flock /run/floe-host-tests.lock hack/kubelet-static-pod.sh ...
# Images come through /work/shared/conformance/registries.conf (local mirror).
set -u
W=$(cd "$(dirname "$0")/.." && pwd)
KUBELET=${KUBELET:-/var/cache/floe/kubelet-v1.37.2/kubelet}
D=$(mktemp -d /tmp/floe-kubelet.XXXXXX)
mkdir -p $D/manifests $D/out/sysctl
cp "$@" $D/manifests/
cat > $D/kubelet.yaml <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: true
cgroupRoot: /kubelet-e2e
enforceNodeAllocatable: []
localStorageCapacityIsolation: false
protectKernelDefaults: true
makeIPTablesUtilChains: false
oomScoreAdj: 0
serializeImagePulls: false
fileCheckFrequency: 2s
podCIDR: 10.100.0.0/24
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "0%"
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
resolvConf: /etc/resolv.conf
staticPodPath: $D/manifests
address: 127.0.0.1
port: 10350
readOnlyPort: 10355
healthzPort: 10358
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
YAML
$W/bin/floe serve --socket $D/floe.sock --state-dir $D/state --run-dir $D/run \
  --registries-config /work/shared/conformance/registries.conf --log-level debug \
  --inspect-socket $D/inspect.sock --metrics-address "" > $D/floe.log 2>&1 & fp=$!
sleep 2
for h in /sys/fs/cgroup/*/; do case $h in */unified/) continue;; esac; mkdir -p "${h}kubelet-e2e"; done
cs=/sys/fs/cgroup/cpuset/kubelet-e2e
[ -z "$(cat $cs/cpuset.cpus)" ] && cat /sys/fs/cgroup/cpuset/cpuset.cpus > $cs/cpuset.cpus && cat /sys/fs/cgroup/cpuset/cpuset.mems > $cs/cpuset.mems
mkdir -p /var/lib/kubelet
mountpoint -q /var/lib/kubelet || mount --bind /var/lib/kubelet /var/lib/kubelet
mount --make-shared /var/lib/kubelet
unshare --mount --propagation unchanged -- bash -c '
  for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
    k=${kv%%=*} v=${kv#*=}
    if [ "$(cat /proc/sys/$k)" != "$v" ]; then f="'"$D"'/out/sysctl/${k//\//.}"; echo "$v" > "$f"; mount --bind "$f" "/proc/sys/$k"; fi
  done
  exec '"$KUBELET"' --config '"$D"'/kubelet.yaml --container-runtime-endpoint unix://'"$D"'/floe.sock --hostname-override vm --v=2' > $D/kubelet.log 2>&1 & kp=$!
want=$(cat $D/manifests/* | grep -c '^  - name:')
for i in $(seq 1 90); do
  sleep 2
  s=$(curl -s 127.0.0.1:10355/pods | python3 -c '
import json,sys
try: d=json.load(sys.stdin)
except Exception: sys.exit(0)
for p in d.get("items",[]):
  for c in p.get("status",{}).get("containerStatuses",[]) or []:
    print(p["metadata"]["name"], c["name"], c.get("image"), c.get("imageID"), list(c.get("state",{}).keys()), c.get("state"))
')
  [ -n "$s" ] && [ "$(echo "$s" | grep -c "'running'")" -ge "$want" ] && break
done
echo "$s"
curl -s 127.0.0.1:10355/pods > $D/out/pods.json
kill $kp; wait $kp 2>/dev/null
$W/bin/floe status --socket $D/floe.sock --inspect-socket $D/inspect.sock > $D/out/status.txt 2>&1
# Remove what the kubelet's pod left with crictl, then stop floe.
C="/work/shared/conformance/bin/crictl --runtime-endpoint unix://$D/floe.sock"
$C ps -a > $D/out/crictl-ps.txt 2>&1
for p in $($C pods -q); do $C stopp $p >/dev/null; $C rmp $p >/dev/null; done
kill $fp; wait $fp
/work/shared/conformance/node-e2e/cleanup.sh
echo "logs: $D/floe.log $D/kubelet.log $D/out"
