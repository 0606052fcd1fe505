package server

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/ocispec"
)

func TestProcMount(t *testing.T) {
	defaults := &runtimeapi.LinuxContainerSecurityContext{MaskedPaths: []string{"/proc/kcore"}, ReadonlyPaths: []string{"/proc/sys"}}
	onlyMasked := &runtimeapi.LinuxContainerSecurityContext{MaskedPaths: []string{"/proc/kcore"}}
	for _, tc := range []struct {
		name       string
		sc         *runtimeapi.LinuxContainerSecurityContext
		userns     bool
		unmasked   bool
		emptyRO    bool
		wantNilAll bool
	}{
		{name: "no security context, userns pod", sc: nil, userns: true, wantNilAll: true},
		{name: "empty lists, host users", sc: &runtimeapi.LinuxContainerSecurityContext{}, wantNilAll: true},
		{name: "Unmasked: empty lists, userns pod", sc: &runtimeapi.LinuxContainerSecurityContext{}, userns: true, unmasked: true, wantNilAll: true},
		{name: "Default lists, userns pod", sc: defaults, userns: true, wantNilAll: true},
		{name: "one list empty, userns pod", sc: onlyMasked, userns: true, emptyRO: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var oc ocispec.Container
			procMount(tc.sc, tc.userns, &oc)
			if oc.ProcMountUnmasked != tc.unmasked {
				t.Errorf("ProcMountUnmasked = %v, want %v", oc.ProcMountUnmasked, tc.unmasked)
			}
			if tc.wantNilAll && (oc.MaskedPaths != nil || oc.ReadonlyPaths != nil) {
				t.Errorf("lists touched: %#v %#v", oc.MaskedPaths, oc.ReadonlyPaths)
			}
			if tc.emptyRO && (oc.ReadonlyPaths == nil || len(oc.ReadonlyPaths) != 0 || oc.MaskedPaths != nil) {
				t.Errorf("want an empty non-nil readonly list only: %#v %#v", oc.MaskedPaths, oc.ReadonlyPaths)
			}
		})
	}
}
