#!/usr/bin/env bash
# Installs what floe and its test suite need on a Debian 12 node: the OCI
# runtime, the container monitor, CNI plugins, and the tools the
# integration tests use (a local registry, skopeo, podman, ...).
# Idempotent; run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(
  runc conmon containernetworking-plugins iproute2 iptables
  iputils-ping util-linux procps ca-certificates
  # Images: cgo headers containers/image and containers/storage build
  # against by default (signature verification, btrfs driver), so plain
  # 'go build' needs no build tags. gcc and libc6-dev (its libc.a) also
  # build floe-pod-reaper, the static C init of pods sharing a PID
  # namespace (hack/build-pod-reaper.sh).
  gcc libc6-dev libgpgme-dev libbtrfs-dev
  # Image tests and the pull benchmark: a local registry, htpasswd auth,
  # a static busybox for test images, skopeo and podman on the same store.
  docker-registry apache2-utils busybox-static skopeo podman
  # critest (make conformance): the kit's scripts build its images with
  # umoci and read the registry and ginkgo's report with curl and jq.
  curl jq umoci
  # bench/ TestTraceOps and PullSideBySide (FLOE_PULL_STRACE) trace floe's
  # system calls.
  strace
  # bench/ SideBySide: containerd (CRI plugin) as the peer runtime, started
  # by the benchmark itself with a private root and socket; it never talks
  # to the package's own service.
  containerd
  # bench/ PodInitRSS: podman's pause process (catatonit -P), the
  # yardstick of the pod init's memory.
  catatonit
  # Other runtime handlers and checkpointing: every configured handler is
  # probed with a trial container (crun must show up unusable on a cgroup
  # v1 hybrid host), and criu for CheckpointContainer; gVisor's runsc for
  # the sandboxed handler's tests (test/integration/runsc_test.go, which
  # fail under CI=true without it) and RUNTIME_HANDLER=runsc conformance.
  crun criu runsc
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# A default pod network for a node that has none yet.
if ! ls /etc/cni/net.d/*.conflist /etc/cni/net.d/*.conf >/dev/null 2>&1; then
  install -D -m 0644 "$(dirname "$0")/../contrib/cni/10-floe-bridge.conflist" /etc/cni/net.d/10-floe-bridge.conflist
fi
