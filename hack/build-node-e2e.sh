#!/usr/bin/env bash
# Builds what SIG Node's e2e suite (k8s.io/kubernetes/test/e2e_node, the
# version pinned in hack/kubelet/go.mod) needs, once, into a cache outside
# the repository, and prints that directory: kubelet (from
# hack/build-kubelet.sh), e2e_node.test, ginkgo and agnhost.
#   KUBELET_CACHE=/var/cache/floe  where node-e2e-<version>/ is kept
#   NODE_E2E_REBUILD=1             build even when the cached binaries exist
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod=$here/kubelet
kubelet=$("$here/build-kubelet.sh")
version=$(basename "$(dirname "$kubelet")"); version=${version#kubelet-}
dir=${KUBELET_CACHE:-/var/cache/floe}/node-e2e-$version
mkdir -p "$dir"
# A hard link: the suite looks for the kubelet beside its test binary.
ln -f "$kubelet" "$dir/kubelet"

build() { # build NAME GO-SUBCOMMAND PACKAGE: into $dir/NAME unless it is there
  local name=$1 sub=$2 pkg=$3
  if [ -x "$dir/$name" ] && [ -z "${NODE_E2E_REBUILD:-}" ]; then return; fi
  local tmp; tmp=$(mktemp "$dir/.$name.XXXXXX")
  echo "build-node-e2e: building $name (several minutes the first time)" >&2
  (cd "$mod" && GOFLAGS=-buildvcs=false CGO_ENABLED=0 go $sub -trimpath -o "$tmp" "$pkg") || { rm -f "$tmp"; return 1; }
  chmod 0755 "$tmp"; mv -f "$tmp" "$dir/$name"
}
build e2e_node.test "test -c" k8s.io/kubernetes/test/e2e_node
build ginkgo build github.com/onsi/ginkgo/v2/ginkgo
build agnhost build k8s.io/kubernetes/test/images/agnhost
echo "$dir"
