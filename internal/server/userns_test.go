package server

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/ocifeatures"
	"github.com/floe-cri/floe/internal/sandbox"
	"github.com/floe-cri/floe/internal/userns"
)

func usernsPodRequest(u *runtimeapi.UserNamespace) *runtimeapi.RunPodSandboxRequest {
	return &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "n", Uid: "u"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: u},
		}},
	}}
}

func kubeletMapping() []*runtimeapi.IDMapping {
	return []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 65536, Length: 65536}}
}

// The errors critest's UserNamespaces specs expect, and the kubelet's
// request translated: InvalidArgument naming the field, from the
// translation alone (nothing made).
func TestSandboxSpecUserNamespace(t *testing.T) {
	two := []*runtimeapi.IDMapping{{HostId: 1000, Length: 100000}, {HostId: 2000, Length: 100000}}
	for _, tc := range []struct {
		name  string
		u     *runtimeapi.UserNamespace
		field string
	}{
		{"CONTAINER", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}, "userns_options.mode"},
		{"TARGET", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_TARGET}, "userns_options.mode"},
		{"two mappings", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: two, Gids: two}, "userns_options.uids"},
		{"no gid mapping", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: kubeletMapping()}, "userns_options.gids"},
		{"id 0 unmapped", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
			Uids: []*runtimeapi.IDMapping{{ContainerId: 1, HostId: 1000, Length: 100000}}, Gids: kubeletMapping()}, "userns_options.uids[0].container_id"},
		{"empty range", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
			Uids: kubeletMapping(), Gids: []*runtimeapi.IDMapping{{HostId: 1000}}}, "userns_options.gids[0].length"},
		{"overflow", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
			Uids: []*runtimeapi.IDMapping{{HostId: 4294967295, Length: 2}}, Gids: kubeletMapping()}, "userns_options.uids[0]"},
		{"NODE with mappings", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE, Uids: kubeletMapping()}, "userns_options"},
	} {
		_, err := sandboxSpec(usernsPodRequest(tc.u))
		if status.Code(toStatus(err)) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want InvalidArgument naming %s", tc.name, err, tc.field)
		}
	}
	spec, err := sandboxSpec(usernsPodRequest(&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: kubeletMapping(), Gids: kubeletMapping()}))
	if err != nil {
		t.Fatal(err)
	}
	want := userns.IDMap{ContainerID: 0, HostID: 65536, Size: 65536}
	if spec.UserNS == nil || spec.UserNS.UIDs[0] != want || spec.UserNS.GIDs[0] != want {
		t.Errorf("mappings %+v", spec.UserNS)
	}
	for _, u := range []*runtimeapi.UserNamespace{nil, {Mode: runtimeapi.NamespaceMode_NODE}} {
		spec, err := sandboxSpec(usernsPodRequest(u))
		if err != nil || spec.UserNS != nil {
			t.Errorf("host user namespace %v: %+v %v", u, spec.UserNS, err)
		}
	}
}

func TestCheckPodUserns(t *testing.T) {
	cfg := &config.Config{DefaultRuntime: "runc", Runtimes: map[string]config.Runtime{"runc": {}, "crun": {}}}
	s := &Server{deps: Deps{Config: cfg, HandlerFeatures: map[string]ocifeatures.Features{"runc": {UserNamespaces: true}},
		Userns: userns.Support{Reason: "crun said no"}}}
	maps := &userns.Mappings{UIDs: []userns.IDMap{{Size: 1}}, GIDs: []userns.IDMap{{Size: 1}}}
	ok := sandbox.Spec{UserNS: maps, NetworkMode: sandbox.ModePod, IPCMode: sandbox.ModePod, PIDMode: sandbox.ModeContainer}
	if err := s.checkPodUserns(&ok); err != nil {
		t.Errorf("default handler: %v", err)
	}
	hostNet := ok
	hostNet.NetworkMode = sandbox.ModeNode
	if err := s.checkPodUserns(&hostNet); status.Code(toStatus(err)) != codes.InvalidArgument || !strings.Contains(err.Error(), "namespace_options.network") {
		t.Errorf("host network: %v", err)
	}
	other := ok
	other.RuntimeHandler = "crun"
	if err := s.checkPodUserns(&other); status.Code(toStatus(err)) != codes.FailedPrecondition || !strings.Contains(err.Error(), "crun") {
		t.Errorf("handler without user namespaces: %v", err)
	}
}

func TestContainerAndMountUserns(t *testing.T) {
	pod := &userns.Mappings{UIDs: idMaps(kubeletMapping()), GIDs: idMaps(kubeletMapping())}
	same := &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: kubeletMapping(), Gids: kubeletMapping()}
	if err := containerUserns(same, pod); err != nil {
		t.Errorf("pod's own mappings: %v", err)
	}
	other := &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: []*runtimeapi.IDMapping{{HostId: 1, Length: 1}}, Gids: kubeletMapping()}
	for name, tc := range map[string]struct {
		u   *runtimeapi.UserNamespace
		pod *userns.Mappings
	}{
		"other mappings":           {other, pod},
		"POD in a host-userns pod": {same, nil},
		"NODE in a userns pod":     {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}, pod},
		"CONTAINER":                {&runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}, pod},
	} {
		if err := containerUserns(tc.u, tc.pod); status.Code(toStatus(err)) != codes.InvalidArgument || !strings.Contains(err.Error(), "userns_options") {
			t.Errorf("%s: %v", name, err)
		}
	}
	kubeletMount := []*runtimeapi.Mount{{HostPath: "/tmp", ContainerPath: "/v", UidMappings: kubeletMapping(), GidMappings: kubeletMapping()}}
	if err := mountUserns(kubeletMount, pod); err != nil {
		t.Errorf("kubelet's mount mappings: %v", err)
	}
	if err := mountUserns(kubeletMount, nil); status.Code(toStatus(err)) != codes.FailedPrecondition || !strings.Contains(err.Error(), "config.mounts[0]") {
		t.Errorf("mount mappings without a pod user namespace: %v", err)
	}
	kubeletMount[0].UidMappings = other.Uids
	if err := mountUserns(kubeletMount, pod); status.Code(toStatus(err)) != codes.FailedPrecondition || !strings.Contains(err.Error(), "config.mounts[0]") {
		t.Errorf("other mount mappings: %v", err)
	}
}
