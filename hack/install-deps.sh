#!/usr/bin/env bash
# Installs what floe and its test suite need on a Debian 12 node: the OCI
# runtime, the container monitor, CNI plugins, and the tools the
# integration tests use. Idempotent; run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(
  runc conmon containernetworking-plugins iproute2 iptables
  iputils-ping util-linux procps ca-certificates busybox-static
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
