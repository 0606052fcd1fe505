package server

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/ocispec"
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

// hostileContainerConfig is the kubelet's config with the values a probe
// found runc refusing late, near their bounds, for the fuzzer to mutate.
func hostileContainerConfig() *runtimeapi.ContainerConfig {
	cfg := kubeletContainerConfig()
	sc := cfg.Linux.SecurityContext
	sc.RunAsUser, sc.RunAsGroup = &runtimeapi.Int64Value{Value: 1 << 31}, &runtimeapi.Int64Value{Value: 1<<31 - 1}
	sc.SupplementalGroups = []int64{1<<31 - 1, 1 << 31}
	sc.RunAsUsername = "a:b\n"
	r := cfg.Linux.Resources
	r.MemoryLimitInBytes, r.CpusetCpus, r.CpusetMems, r.CpuShares, r.CpuQuota = 1, "0-3,abc", "0-", 1, 999
	cfg.Mounts = append(cfg.Mounts, &runtimeapi.Mount{ContainerPath: "/proc/sys/kernel", HostPath: "/tmp"}, &runtimeapi.Mount{ContainerPath: "/x/..", HostPath: "/tmp"})
	cfg.Envs = append(cfg.Envs, &runtimeapi.KeyValue{Key: "A=B", Value: []byte("\x00")})
	return cfg
}

func FuzzContainerSpec(f *testing.F) {
	seed(f, kubeletContainerConfig())
	seed(f, hostileContainerConfig())
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := &runtimeapi.ContainerConfig{}
		if proto.Unmarshal(data, cfg) != nil {
			return
		}
		spec, err := containerSpec(cfg)
		onlyInvalidArgument(t, err)
		if err != nil {
			return
		}
		if spec.Name == "" || spec.Image == "" {
			t.Fatalf("accepted a container without name or image: %+v", cfg)
		}
		// Whatever is accepted must be something runc takes.
		oc := spec.OCI
		if err := oc.Resources.Validate(); err != nil {
			t.Fatalf("accepted resources the kernel refuses: %v", err)
		}
		if m := oc.Resources.MemoryLimit; m != 0 && m < ocispec.MinMemoryLimit {
			t.Fatalf("accepted memory limit %d", m)
		}
		u := oc.User
		for _, id := range append([]int64{ptrOr(u.RunAsUser), ptrOr(u.RunAsGroup)}, u.SupplementalGroups...) {
			if id < 0 || id > ocispec.MaxID {
				t.Fatalf("accepted id %d", id)
			}
		}
		if strings.ContainsAny(u.RunAsUsername, ":\n\x00") {
			t.Fatalf("accepted user name %q", u.RunAsUsername)
		}
		for _, m := range oc.Mounts {
			p := filepath.Clean(m.ContainerPath)
			if !filepath.IsAbs(p) || p == "/" || (strings.HasPrefix(p, "/proc/") && !slices.Contains(procMountsAllowed, p)) {
				t.Fatalf("accepted mount destination %q", m.ContainerPath)
			}
		}
		for _, e := range oc.Env {
			if strings.IndexByte(e, 0) >= 0 {
				t.Fatalf("accepted env %q", e)
			}
		}
	})
}

func ptrOr(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func FuzzSandboxSpec(f *testing.F) {
	seed(f, kubeletPodConfig())
	hostile := kubeletPodConfig()
	hostile.Linux.Sysctls = map[string]string{
		"net.ipv4.nonexistent": "1", "net.ipv4.ip_unprivileged_port_start": "1\n0",
		"net/ipv4/conf/eth0.100/rp_filter": "1", "kernel.shmmax": "1", "vm.swappiness": "1",
	}
	seed(f, hostile)
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
		if err != nil {
			return
		}
		// Accepted sysctls are namespaced, known to this kernel, and
		// have single-line values.
		for k, v := range cfg.GetLinux().GetSysctls() {
			if strings.ContainsAny(v, "\n\r\x00") {
				t.Fatalf("accepted sysctl value %q", v)
			}
			parts := strings.Split(ocispec.NormalizeSysctl(k), ".")
			for i := range parts {
				parts[i] = strings.ReplaceAll(parts[i], "/", ".")
			}
			// Per-device ones are looked up for the default device.
			perDevice := len(parts) == 5 && (parts[2] == "conf" || parts[2] == "neigh")
			if _, err := os.Stat(filepath.Join(append([]string{procSys}, parts...)...)); err != nil && !perDevice {
				t.Fatalf("accepted unknown sysctl %q: %v", k, err)
			}
		}
	})
}
