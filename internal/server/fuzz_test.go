package server

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The request translators are floe's door: whatever bytes arrive, they
// either refuse the request (InvalidArgument, FailedPrecondition) or produce a spec, and
// never panic. Fuzzing the wire form reaches every field, nested message
// and enum value (including unknown ones).
//
//	go test -run '^$' -fuzz FuzzContainerSpec -fuzztime 10m ./internal/server
//	go test -run '^$' -fuzz FuzzSandboxSpec -fuzztime 10m ./internal/server

func kubeletContainerConfig() *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: 1},
		Image:    &runtimeapi.ImageSpec{Image: "sha256:0123", UserSpecifiedImage: "nginx:1"},
		Command:  []string{"/bin/sh"}, Args: []string{"-c", "sleep 1"},
		WorkingDir: "/srv",
		Envs:       []*runtimeapi.KeyValue{{Key: "A", Value: []byte("1")}},
		Mounts: []*runtimeapi.Mount{
			{ContainerPath: "/data", HostPath: "/var/lib/kubelet/pods/x/volumes/d", Readonly: true, RecursiveReadOnly: true},
			{ContainerPath: "/img", Image: &runtimeapi.ImageSpec{Image: "sha256:abcd"}, Readonly: true, ImageSubPath: "etc"},
		},
		Devices: []*runtimeapi.Device{{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rwm"}},
		Labels:  map[string]string{"io.kubernetes.container.name": "app"},
		LogPath: "app/1.log",
		Stdin:   true,
		Tty:     true,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{
				CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 64 << 20, OomScoreAdj: -997,
				CpusetCpus: "0", HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 0}},
			},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				Capabilities:       &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN"}, DropCapabilities: []string{"ALL"}},
				RunAsUser:          &runtimeapi.Int64Value{Value: 1000},
				RunAsGroup:         &runtimeapi.Int64Value{Value: 1000},
				SupplementalGroups: []int64{2000},
				ReadonlyRootfs:     true,
				NoNewPrivs:         true,
				MaskedPaths:        []string{"/proc/kcore"},
				Seccomp:            &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
			},
		},
	}
}

func kubeletPodConfig() *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "shop", Uid: "0b7e5c6e-1", Attempt: 0},
		Hostname:     "web",
		LogDirectory: "/var/log/pods/shop_web_0b7e5c6e-1",
		DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"shop.svc.cluster.local"}, Options: []string{"ndots:5"}},
		PortMappings: []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 8080}},
		Labels:       map[string]string{"app": "web"},
		Annotations:  map[string]string{"kubernetes.io/ingress-bandwidth": "10M"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/besteffort/pod0b7e5c6e-1",
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
			},
			Sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"},
		},
	}
}

func seed(f *testing.F, m proto.Message) {
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{})
}

// onlyInvalidArgument fails unless err is nil or a clean refusal:
// InvalidArgument, or FailedPrecondition for what the node cannot do.
func onlyInvalidArgument(t *testing.T, err error) {
	if err == nil {
		return
	}
	if c := status.Code(toStatus(err)); c != codes.InvalidArgument && c != codes.FailedPrecondition {
		t.Fatalf("translation error with code %v, want InvalidArgument or FailedPrecondition: %v", c, err)
	}
}

func FuzzContainerSpec(f *testing.F) {
	seed(f, kubeletContainerConfig())
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := &runtimeapi.ContainerConfig{}
		if proto.Unmarshal(data, cfg) != nil {
			return
		}
		spec, err := containerSpec(cfg)
		onlyInvalidArgument(t, err)
		if err == nil && (spec.Name == "" || spec.Image == "") {
			t.Fatalf("accepted a container without name or image: %+v", cfg)
		}
	})
}

func FuzzSandboxSpec(f *testing.F) {
	seed(f, kubeletPodConfig())
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := &runtimeapi.PodSandboxConfig{}
		if proto.Unmarshal(data, cfg) != nil {
			return
		}
		spec, err := sandboxSpec(&runtimeapi.RunPodSandboxRequest{Config: cfg})
		onlyInvalidArgument(t, err)
		if err == nil && (spec.Name == "" || spec.Namespace == "" || len(cfg.Hostname) > 64) {
			t.Fatalf("accepted an invalid pod: %+v", cfg)
		}
	})
}
