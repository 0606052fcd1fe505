#!/usr/bin/env bash
# Builds the real kubelet (k8s.io/kubernetes/cmd/kubelet, the version pinned in
# hack/kubelet/go.mod) once into a cache outside the repository and prints its
# path. A later run reuses the binary (a cold build takes ~8 min on 2 cores).
#   KUBELET_CACHE=/var/cache/floe  where kubelet-<version>/kubelet is kept
#   KUBELET_REBUILD=1              build even when the cached binary exists
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod=$here/kubelet
version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3} $1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2}' "$mod/go.mod" | head -1)
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
# hack/kubelet/go.sum pins every module; the version variables are what
# Kubernetes' own build stamps (otherwise the kubelet calls itself
# v0.0.0-master).
minor=${version#v1.}; minor=${minor%%.*}
ldflags="-X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
(cd "$mod" && GOFLAGS=-buildvcs=false CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp" k8s.io/kubernetes/cmd/kubelet)
chmod 0755 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
"$out" --version >&2
echo "$out"
