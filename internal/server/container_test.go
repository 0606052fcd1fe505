package server

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/ocispec"
)

func userConfig(sc *runtimeapi.LinuxContainerSecurityContext) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: sc},
	}
}

func TestContainerSpecUserTranslation(t *testing.T) {
	spec, err := containerSpec(userConfig(&runtimeapi.LinuxContainerSecurityContext{
		RunAsUser: &runtimeapi.Int64Value{Value: 1000}, RunAsGroup: &runtimeapi.Int64Value{Value: 3000},
		SupplementalGroups: []int64{1234}, SupplementalGroupsPolicy: runtimeapi.SupplementalGroupsPolicy_Strict,
	}))
	if err != nil {
		t.Fatal(err)
	}
	u := spec.OCI.User
	if *u.RunAsUser != 1000 || *u.RunAsGroup != 3000 || len(u.SupplementalGroups) != 1 || u.GroupsPolicy != ocispec.GroupsStrict {
		t.Errorf("user = %+v", u)
	}
	// The protobuf default is Merge.
	spec, err = containerSpec(userConfig(&runtimeapi.LinuxContainerSecurityContext{RunAsUsername: "app"}))
	if err != nil || spec.OCI.User.GroupsPolicy != ocispec.GroupsMerge {
		t.Errorf("default policy: %+v, %v", spec.OCI.User, err)
	}
}

// critest's "runtime should return error if RunAsGroup is set without
// RunAsUser": refused by the translation, before the container core runs.
func TestContainerSpecUserRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sc    *runtimeapi.LinuxContainerSecurityContext
		field string
	}{
		{"run_as_group alone", &runtimeapi.LinuxContainerSecurityContext{RunAsGroup: &runtimeapi.Int64Value{Value: 1002}},
			"config.linux.security_context.run_as_group"},
		{"unknown policy", &runtimeapi.LinuxContainerSecurityContext{SupplementalGroupsPolicy: 9},
			"config.linux.security_context.supplemental_groups_policy"},
		{"negative supplemental group", &runtimeapi.LinuxContainerSecurityContext{SupplementalGroups: []int64{-1}},
			"config.linux.security_context.supplemental_groups[0]"},
		{"uid out of range", &runtimeapi.LinuxContainerSecurityContext{RunAsUser: &runtimeapi.Int64Value{Value: 1 << 40}},
			"config.linux.security_context.run_as_user"},
	} {
		_, err := containerSpec(userConfig(tc.sc))
		st := toStatus(err)
		if err == nil || status.Code(st) != codes.InvalidArgument || !strings.Contains(st.Error(), tc.field+":") {
			t.Errorf("%s: %v; want InvalidArgument naming %s", tc.name, st, tc.field)
		}
	}
}
