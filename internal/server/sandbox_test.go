package server

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/sandbox"
)

func TestSandboxSpecTranslation(t *testing.T) {
	req := &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "n", Uid: "u", Attempt: 2},
		PortMappings: []*runtimeapi.PortMapping{
			{ContainerPort: 80}, // documentation only
			{HostPort: 8080, ContainerPort: 80, Protocol: runtimeapi.Protocol_UDP}, // real mapping
		},
		Annotations: map[string]string{ingressBandwidthAnnotation: "10M"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: "/kubepods/pod-u", SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER},
		}},
	}}
	spec, err := sandboxSpec(req)
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.PortMappings) != 1 || spec.PortMappings[0].Protocol != "udp" || spec.PortMappings[0].HostPort != 8080 {
		t.Errorf("port mappings = %+v", spec.PortMappings)
	}
	if spec.Bandwidth == nil || spec.Bandwidth.IngressRate != 10_000_000 || spec.Bandwidth.IngressBurst != math.MaxInt32 || spec.Bandwidth.EgressRate != 0 {
		t.Errorf("bandwidth = %+v", spec.Bandwidth)
	}
	if spec.NetworkMode != sandbox.ModeNode || spec.IPCMode != sandbox.ModePod || spec.PIDMode != sandbox.ModeContainer {
		t.Errorf("modes = %s %s %s", spec.NetworkMode, spec.IPCMode, spec.PIDMode)
	}
	if spec.CgroupParent != "/kubepods/pod-u" || spec.Attempt != 2 || len(spec.Raw) == 0 {
		t.Errorf("spec = %+v", spec)
	}
	again, _ := sandboxSpec(req)
	if string(again.Raw) != string(spec.Raw) {
		t.Errorf("raw encoding is not deterministic")
	}
}

func TestToStatusMapsKinds(t *testing.T) {
	_, err := sandboxSpec(&runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Namespace: "n"}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "config.metadata.name") {
		t.Errorf("got %v", err)
	}
}

func TestIDAttrsNameThePodAndContainer(t *testing.T) {
	got := idAttrs(&runtimeapi.StopContainerRequest{ContainerId: "c1"})
	if len(got) != 2 || got[1] != "c1" {
		t.Errorf("container attrs = %v", got)
	}
	got = idAttrs(&runtimeapi.CreateContainerRequest{PodSandboxId: "p1"})
	if len(got) != 2 || got[0] != "pod" || got[1] != "p1" {
		t.Errorf("pod attrs = %v", got)
	}
	if got := idAttrs(&runtimeapi.VersionRequest{}); len(got) != 0 {
		t.Errorf("version attrs = %v", got)
	}
}

func TestCheckHostname(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"", true},
		{"web-0", true},
		{"web-0.sub.ns.svc.cluster.local", true},
		// setHostnameAsFQDN without a cluster domain: an absolute name.
		{"hostfqdn-127918.t.hostfqdn-99.svc.", true},
		{"a..b", false},
		{".", false},
		{"a.b..", false},
		{"-a", false},
		{"a_b", false},
		{"a/b", false},
		{strings.Repeat("a", 65), false},
	} {
		err := checkHostname(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("checkHostname(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "config.hostname") {
			t.Errorf("checkHostname(%q): error %q does not name the field", tc.name, err)
		}
	}
}
