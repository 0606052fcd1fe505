package integration

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/harness"
)

// TestHostileFieldsAreRefusedBeforeAnythingIsMade sends requests runc or
// the kernel would refuse only after floe had made the container's rootfs,
// bundle and cgroup (or, for pod sysctls, not until a container of the pod
// starts). Each must be InvalidArgument naming the field, decided before
// any side effect: no container, pod, storage container or undo.
func TestHostileFieldsAreRefusedBeforeAnythingIsMade(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	ctx := harness.Ctx(t)
	big := int64(1) << 31 // runc's ids stop at 2^31-1

	containers := []struct {
		field  string
		mutate func(*runtimeapi.ContainerConfig)
		code   codes.Code // InvalidArgument unless set
	}{
		{field: "run_as_user", mutate: func(c *runtimeapi.ContainerConfig) { e.sc(c).RunAsUser = i64(big) }},
		{field: "run_as_group", mutate: func(c *runtimeapi.ContainerConfig) { e.sc(c).RunAsUser = i64(0); e.sc(c).RunAsGroup = i64(big) }},
		{field: "supplemental_groups[1]", mutate: func(c *runtimeapi.ContainerConfig) { e.sc(c).SupplementalGroups = []int64{10, big} }},
		{field: "run_as_username", mutate: func(c *runtimeapi.ContainerConfig) { e.sc(c).RunAsUsername = "root:x:0:0::/:/bin/sh\n" }},
		{field: "memory_limit_in_bytes", mutate: func(c *runtimeapi.ContainerConfig) { res(c).MemoryLimitInBytes = 1 }},
		{field: "cpuset_cpus", mutate: func(c *runtimeapi.ContainerConfig) { res(c).CpusetCpus = "abc" }},
		{field: "cpuset_mems", mutate: func(c *runtimeapi.ContainerConfig) { res(c).CpusetMems = "abc" }},
		// Valid lists, but not this host's CPUs or nodes.
		{field: "cpuset_cpus", mutate: func(c *runtimeapi.ContainerConfig) { res(c).CpusetCpus = "0,4000-4001" }, code: codes.FailedPrecondition},
		{field: "cpuset_mems", mutate: func(c *runtimeapi.ContainerConfig) { res(c).CpusetMems = "1000" }, code: codes.FailedPrecondition},
		{field: "mounts[0].container_path", mutate: func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/", HostPath: e.logDir}}
		}},
		{field: "mounts[1].container_path", mutate: func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: e.logDir}, {ContainerPath: "/proc/sys/kernel", HostPath: e.logDir}}
		}},
		{field: "mounts[0].container_path", mutate: func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/x/../proc", HostPath: e.logDir}}
		}},
		{field: "metadata.name", mutate: func(c *runtimeapi.ContainerConfig) { c.Metadata.Name = "a/../../b" }},
		{field: "envs[0]", mutate: func(c *runtimeapi.ContainerConfig) {
			c.Envs = []*runtimeapi.KeyValue{{Key: "A\x00B", Value: []byte("1")}}
		}},
	}
	for _, tc := range containers {
		cfg := e.config("hostile", "true")
		tc.mutate(cfg)
		_, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: cfg, SandboxConfig: e.podCfg})
		want := codes.InvalidArgument
		if tc.code != codes.OK {
			want = tc.code
		}
		if status.Code(err) != want || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want %v naming %s", tc.field, err, want, tc.field)
		}
	}

	pods := []struct {
		field  string
		mutate func(*runtimeapi.PodSandboxConfig)
	}{
		{`sysctls["net.ipv4.nonexistent"]`, func(p *runtimeapi.PodSandboxConfig) {
			p.Linux.Sysctls = map[string]string{"net.ipv4.nonexistent": "1"}
		}},
		{`sysctls["net.ipv4.ip_unprivileged_port_start"]`, func(p *runtimeapi.PodSandboxConfig) {
			p.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "1\n0"}
		}},
		{`sysctls["vm.swappiness"]`, func(p *runtimeapi.PodSandboxConfig) {
			p.Linux.Sysctls = map[string]string{"vm.swappiness": "1"}
		}},
		{`sysctls["net/ipv4/../../kernel/x"]`, func(p *runtimeapi.PodSandboxConfig) {
			p.Linux.Sysctls = map[string]string{"net/ipv4/../../kernel/x": "1"}
		}},
	}
	for _, tc := range pods {
		cfg := podConfig("hostile")
		tc.mutate(cfg)
		_, err := e.d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want InvalidArgument naming %s", tc.field, err, tc.field)
		}
	}

	if r, err := e.d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); err != nil || len(r.Containers) != 0 {
		t.Errorf("refused containers were left behind: %v %v", r.GetContainers(), err)
	}
	if pods := listPods(t, e.d); len(pods) != 1 || pods[0].Id != e.podID {
		t.Errorf("refused pods were left behind: %v", pods)
	}
	if l := storageContainers(t, e.d); len(l) != 0 {
		t.Errorf("storage containers left behind: %s", l)
	}
	// Refused in translation means nothing was made to be undone.
	if log := e.d.Log(); strings.Contains(log, "undoing") {
		t.Errorf("a refused request got as far as making something (the daemon log shows an undo)")
	}

	// The bounds are exact: the largest id runc takes, a limit at the
	// floor, a valid cpuset and a real sysctl still work.
	cfg := e.config("edge", "id")
	e.sc(cfg).RunAsUser = i64(big - 1)
	e.sc(cfg).SupplementalGroups = []int64{big - 1}
	res(cfg).MemoryLimitInBytes = 6 << 20
	res(cfg).CpusetCpus = "0"
	res(cfg).CpusetMems = "0"
	cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/proc/sys/kernel/ns_last_pid", HostPath: "/proc/sys/kernel/ns_last_pid", Readonly: true}}
	id := e.run(t, cfg)
	e.waitExited(t, id)
	if out := e.output(t, id); !strings.Contains(out, "uid=2147483647") {
		t.Errorf("edge container output %q, want uid=2147483647", out)
	}

	// A live update is held to the same values, before runc update runs.
	live := e.run(t, e.config("live", "sleep", "60"))
	for field, r := range map[string]*runtimeapi.LinuxContainerResources{
		"memory_limit_in_bytes": {MemoryLimitInBytes: 1},
		"cpuset_cpus":           {CpusetCpus: "abc"},
		"cpu_shares":            {CpuShares: 1},
	} {
		_, err := e.d.Runtime.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: live, Linux: r})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), field) {
			t.Errorf("update %s: %v, want InvalidArgument naming it", field, err)
		}
	}
	if got := e.status(t, live).GetResources().GetLinux().GetMemoryLimitInBytes(); got != 0 {
		t.Errorf("a refused update changed the recorded memory limit to %d", got)
	}
}

func res(c *runtimeapi.ContainerConfig) *runtimeapi.LinuxContainerResources {
	if c.Linux == nil {
		c.Linux = &runtimeapi.LinuxContainerConfig{}
	}
	if c.Linux.Resources == nil {
		c.Linux.Resources = &runtimeapi.LinuxContainerResources{}
	}
	return c.Linux.Resources
}
