#!/usr/bin/env bash
# Builds the real kubelet (k8s.io/kubernetes/cmd/kubelet, the version pinned in
# hack/kubelet/go.mod) once into a cache outside the repository and prints its
# path. A later run reuses the binary (a cold build takes ~8 min on 2 cores).
#   KUBELET_CACHE=/var/cache/floe  where kubelet-<version>/kubelet is kept
#   KUBELET_REBUILD=1              build even when the cached binary exists
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod=$here/kubelet
version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$mod/go.mod")
[ -n "$version" ] || { echo "build-kubelet: no k8s.io/kubernetes version in $mod/go.mod" >&2; exit 1; }
dir=${KUBELET_CACHE:-/var/cache/floe}/kubelet-$version
out=$dir/kubelet
if [ -x "$out" ] && [ -z "${KUBELET_REBUILD:-}" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp "$dir/.kubelet.XXXXXX")
trap 'rm -f "$tmp"' EXIT
echo "build-kubelet: building kubelet $version into $out (several minutes)" >&2
# -mod=mod: go.sum is completed from the module proxy (checked against the
# checksum database) instead of failing on the first missing line.
(cd "$mod" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$tmp" k8s.io/kubernetes/cmd/kubelet)
chmod 0755 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
"$out" --version >&2
echo "$out"
