package server

import (
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/ocispec"
)

// procMount decides a container's masked and read-only /proc paths from
// what the kubelet sent. The kubelet sends its default lists explicitly
// for procMount: Default and two empty lists for procMount: Unmasked, and
// proto3 cannot tell an empty list from an unset one. The signal is the
// pod: the API server only admits Unmasked in a pod with hostUsers: false,
// so in a pod with a user namespace a security context with empty lists
// is taken as sent (nothing masked, as containerd and CRI-O do). Outside
// a user namespace, and when there is no security context at all (a
// client other than the kubelet), an empty list keeps floe's defaults:
// there an unmasked /proc would expose the host, and nobody can have
// asked for it.
func procMount(sc *runtimeapi.LinuxContainerSecurityContext, podUserns bool, oc *ocispec.Container) {
	if sc == nil || !podUserns {
		return
	}
	if len(sc.MaskedPaths) == 0 && len(sc.ReadonlyPaths) == 0 {
		oc.ProcMountUnmasked = true
		return
	}
	// One list empty and the other not: the empty one means none too
	// (a non-nil empty list replaces the defaults in ocispec.Build).
	if len(sc.MaskedPaths) == 0 {
		oc.MaskedPaths = []string{}
	}
	if len(sc.ReadonlyPaths) == 0 {
		oc.ReadonlyPaths = []string{}
	}
}
