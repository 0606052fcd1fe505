package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Values runc or the kernel refuse only once the container's rootfs,
// bundle and cgroup exist are refused by the translation instead, as
// InvalidArgument naming the field.
func TestContainerSpecRefusesWhatRuncWouldRefuseLate(t *testing.T) {
	big := int64(1) << 31
	sc := func(c *runtimeapi.ContainerConfig) *runtimeapi.LinuxContainerSecurityContext {
		return c.Linux.SecurityContext
	}
	res := func(c *runtimeapi.ContainerConfig) *runtimeapi.LinuxContainerResources {
		if c.Linux.Resources == nil {
			c.Linux.Resources = &runtimeapi.LinuxContainerResources{}
		}
		return c.Linux.Resources
	}
	mount := func(path string) func(*runtimeapi.ContainerConfig) {
		return func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/ok", HostPath: "/tmp"}, {ContainerPath: path, HostPath: "/tmp"}}
		}
	}
	for _, tc := range []struct {
		field string
		edit  func(*runtimeapi.ContainerConfig)
	}{
		{"config.linux.security_context.run_as_user", func(c *runtimeapi.ContainerConfig) { sc(c).RunAsUser = i64(big) }},
		{"config.linux.security_context.run_as_group", func(c *runtimeapi.ContainerConfig) {
			sc(c).RunAsUser, sc(c).RunAsGroup = i64(0), i64(big)
		}},
		{"config.linux.security_context.supplemental_groups[1]", func(c *runtimeapi.ContainerConfig) { sc(c).SupplementalGroups = []int64{1, big} }},
		{"config.linux.security_context.run_as_username", func(c *runtimeapi.ContainerConfig) { sc(c).RunAsUsername = "root\nadmin" }},
		{"config.linux.security_context.run_as_username", func(c *runtimeapi.ContainerConfig) { sc(c).RunAsUsername = "a:b" }},
		{"config.linux.resources.memory_limit_in_bytes", func(c *runtimeapi.ContainerConfig) { res(c).MemoryLimitInBytes = 1 }},
		{"config.linux.resources.memory_limit_in_bytes", func(c *runtimeapi.ContainerConfig) { res(c).MemoryLimitInBytes = 6<<20 - 1 }},
		{"config.linux.resources.cpu_shares", func(c *runtimeapi.ContainerConfig) { res(c).CpuShares = 1 }},
		{"config.linux.resources.cpu_quota", func(c *runtimeapi.ContainerConfig) { res(c).CpuQuota = 10 }},
		{"config.linux.resources.cpu_period", func(c *runtimeapi.ContainerConfig) { res(c).CpuPeriod = 10 }},
		{"config.linux.resources.cpuset_cpus", func(c *runtimeapi.ContainerConfig) { res(c).CpusetCpus = "abc" }},
		{"config.linux.resources.cpuset_cpus", func(c *runtimeapi.ContainerConfig) { res(c).CpusetCpus = "0-3,5-" }},
		{"config.linux.resources.cpuset_mems", func(c *runtimeapi.ContainerConfig) { res(c).CpusetMems = "abc" }},
		{"config.mounts[1].container_path", mount("/")},
		{"config.mounts[1].container_path", mount("/a/..")},
		{"config.mounts[1].container_path", mount("relative")},
		{"config.mounts[1].container_path", mount("/proc/sys/kernel")},
		{"config.mounts[1].container_path", mount("/proc/sys")},
		{"config.mounts[1].container_path", mount("/proc/1/root")},
		{"config.mounts[1].container_path", mount("/proc")}, // /tmp is not a procfs
		{"config.mounts[1]", mount("/x\x00")},
		{"config.metadata.name", func(c *runtimeapi.ContainerConfig) { c.Metadata.Name = "../x" }},
		{"config.metadata.name", func(c *runtimeapi.ContainerConfig) { c.Metadata.Name = "a\nb" }},
		{"config.devices[0].permissions", func(c *runtimeapi.ContainerConfig) {
			c.Devices = []*runtimeapi.Device{{HostPath: "/dev/null", Permissions: "rwx"}}
		}},
		{"config.devices[0].host_path", func(c *runtimeapi.ContainerConfig) { c.Devices = []*runtimeapi.Device{{HostPath: "dev/null"}} }},
		{"config.devices[0].container_path", func(c *runtimeapi.ContainerConfig) {
			c.Devices = []*runtimeapi.Device{{HostPath: "/dev/null", ContainerPath: "/"}}
		}},
		{"config.envs[0].key", func(c *runtimeapi.ContainerConfig) { c.Envs = []*runtimeapi.KeyValue{{Key: "A=B", Value: []byte("1")}} }},
		{"config.envs[0].key", func(c *runtimeapi.ContainerConfig) {
			c.Envs = []*runtimeapi.KeyValue{{Key: "A\x00", Value: []byte("1")}}
		}},
		{"config.envs[0].value", func(c *runtimeapi.ContainerConfig) {
			c.Envs = []*runtimeapi.KeyValue{{Key: "A", Value: []byte("1\x002")}}
		}},
	} {
		cfg := baseContainerConfig()
		tc.edit(cfg)
		_, err := containerSpec(cfg)
		if status.Code(toStatus(err)) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("%s: %v, want InvalidArgument naming it", tc.field, err)
		}
	}
}

// The bounds are exact: what runc and the kernel take still passes.
func TestContainerSpecAcceptsTheEdges(t *testing.T) {
	cfg := baseContainerConfig()
	s := cfg.Linux.SecurityContext
	s.RunAsUser, s.RunAsGroup, s.SupplementalGroups = i64(1<<31-1), i64(1<<31-1), []int64{0, 1<<31 - 1}
	s.RunAsUsername = "www-data"
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{
		MemoryLimitInBytes: 6 << 20, CpuShares: 2, CpuQuota: 1000, CpuPeriod: 1000000,
		CpusetCpus: "0-3,5,7-8", CpusetMems: "0",
	}
	cfg.Mounts = []*runtimeapi.Mount{
		{ContainerPath: "/proc/cpuinfo", HostPath: "/tmp"},
		{ContainerPath: "/proc/sys/kernel/ns_last_pid", HostPath: "/tmp"},
		{ContainerPath: "/proc", HostPath: "/proc"},
		{ContainerPath: "/procfoo", HostPath: "/tmp"},
		{ContainerPath: "/sys/fs/bpf", HostPath: "/tmp"},
	}
	cfg.Envs = []*runtimeapi.KeyValue{{Key: "A", Value: []byte("x=y")}}
	cfg.Devices = []*runtimeapi.Device{{HostPath: "/dev/fuse", ContainerPath: "/dev/fuse", Permissions: "rw"}, {HostPath: "/dev/null"}}
	if _, err := containerSpec(cfg); err != nil {
		t.Fatal(err)
	}
}

func TestSandboxSpecRefusesBadSysctls(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"net/ipv4/ip_unprivileged_port_start", "net/ipv4/conf/default/rp_filter", "kernel/shmmax"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := procSys
	procSys = root
	t.Cleanup(func() { procSys = old })

	run := func(sysctls map[string]string, hostNet bool) error {
		cfg := kubeletPodConfig()
		cfg.Linux.Sysctls = sysctls
		if hostNet {
			cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
		}
		_, err := sandboxSpec(&runtimeapi.RunPodSandboxRequest{Config: cfg})
		return err
	}
	for _, tc := range []struct {
		key, value string
		hostNet    bool
	}{
		{key: "net.ipv4.nonexistent", value: "1"},
		{key: "net.ipv4.ip_unprivileged_port_start", value: "1\n0"},
		{key: "net.ipv4.ip_unprivileged_port_start", value: "1\x00"},
		{key: "vm.swappiness", value: "1"},
		{key: "net/ipv4/../../kernel/shmmax", value: "1"},
		{key: "net.ipv4.ip_unprivileged_port_start", value: "0", hostNet: true},
	} {
		err := run(map[string]string{tc.key: tc.value}, tc.hostNet)
		want := `config.linux.sysctls["` + tc.key + `"]`
		if status.Code(toStatus(err)) != codes.InvalidArgument || !strings.Contains(err.Error(), want) {
			t.Errorf("%q=%q: %v, want InvalidArgument naming %s", tc.key, tc.value, err, want)
		}
	}
	if err := run(map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shmmax": "1", "net.ipv4.conf.eth0.rp_filter": "1"}, false); err != nil {
		t.Errorf("known sysctls: %v", err)
	}
}

func i64(v int64) *runtimeapi.Int64Value { return &runtimeapi.Int64Value{Value: v} }
