package ocispec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/floe-cri/floe/internal/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func zero() *int { v := 0; return &v }

func testOptions() Options {
	return Options{BoundingSet: AllCapabilities(), MinOOMScoreAdj: zero(), Log: quiet}
}

func baseContainer(t *testing.T) *Container {
	return &Container{
		ID:     "c1",
		Rootfs: testRootfs(t),
		Image: ImageConfig{
			Entrypoint: []string{"/bin/app"}, Cmd: []string{"--serve"},
			Env: []string{"PATH=/usr/bin:/bin", "MODE=image"}, WorkingDir: "/srv", User: "app",
		},
		Env:      []string{"MODE=cri", "EXTRA=1"},
		Hostname: "pod-a",
		Namespaces: Namespaces{
			NetPath: "/run/netns/p", IPCPath: "/run/floe/ipc", UTSPath: "/run/floe/uts",
		},
		PodFiles:    PodFiles{ResolvConf: "/run/floe/pods/x/resolv.conf", Hosts: "/run/floe/pods/x/hosts", Hostname: "/run/floe/pods/x/hostname", Shm: "/run/floe/pods/x/shm"},
		CgroupsPath: "/kubepods/pod1/floe-c1",
		Seccomp:     Seccomp{Kind: SeccompRuntimeDefault},
		OOMScoreAdj: -997,
	}
}

func mountAt(s *specs.Spec, dest string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dest {
			return &s.Mounts[i]
		}
	}
	return nil
}

func TestBuildDefaults(t *testing.T) {
	c := baseContainer(t)
	s, err := Build(c, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	p := s.Process
	if !slices.Equal(p.Args, []string{"/bin/app", "--serve"}) || p.Cwd != "/srv" {
		t.Errorf("args/cwd: %q %q", p.Args, p.Cwd)
	}
	wantEnv := []string{"PATH=/usr/bin:/bin", "MODE=cri", "EXTRA=1", "HOSTNAME=pod-a", "HOME=/home/app"}
	if !slices.Equal(p.Env, wantEnv) {
		t.Errorf("env %q, want %q", p.Env, wantEnv)
	}
	if p.User.UID != 1000 || p.User.GID != 1000 || !slices.Equal(p.User.AdditionalGids, []uint32{1000, 44, 29}) {
		t.Errorf("user %+v", p.User)
	}
	if *p.OOMScoreAdj != 0 {
		t.Errorf("oom_score_adj %d, want clamped to 0", *p.OOMScoreAdj)
	}
	if len(p.Capabilities.Effective) != len(DefaultCapabilities) || len(p.Capabilities.Inheritable) != 0 {
		t.Errorf("caps %+v", p.Capabilities)
	}
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Fatalf("seccomp %+v", s.Linux.Seccomp)
	}
	// unshare is allowed by the default profile only with CAP_SYS_ADMIN.
	for _, sc := range s.Linux.Seccomp.Syscalls {
		if slices.Contains(sc.Names, "unshare") && sc.Action == specs.ActAllow {
			t.Error("default profile allows unshare without CAP_SYS_ADMIN")
		}
	}
	if !slices.Equal(s.Linux.MaskedPaths, DefaultMaskedPaths) || !slices.Equal(s.Linux.ReadonlyPaths, DefaultReadonlyPaths) {
		t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	wantNS := []specs.LinuxNamespace{{Type: "mount"}, {Type: "network", Path: "/run/netns/p"}, {Type: "ipc", Path: "/run/floe/ipc"}, {Type: "uts", Path: "/run/floe/uts"}, {Type: "pid"}}
	if !slices.Equal(s.Linux.Namespaces, wantNS) {
		t.Errorf("namespaces %+v", s.Linux.Namespaces)
	}
	if s.Linux.CgroupsPath != c.CgroupsPath || s.Root.Path != c.Rootfs {
		t.Errorf("cgroups %q root %+v", s.Linux.CgroupsPath, s.Root)
	}
	for dest, src := range map[string]string{"/etc/resolv.conf": c.PodFiles.ResolvConf, "/etc/hosts": c.PodFiles.Hosts, "/etc/hostname": c.PodFiles.Hostname, "/dev/shm": c.PodFiles.Shm} {
		if m := mountAt(s, dest); m == nil || m.Source != src {
			t.Errorf("mount %s: %+v", dest, m)
		}
	}
	if m := mountAt(s, "/sys"); m == nil || m.Type != "sysfs" || !slices.Contains(m.Options, "ro") {
		t.Errorf("/sys: %+v", m)
	}
	if r := s.Linux.Resources.Devices; len(r) != 1 || r[0].Allow {
		t.Errorf("device rules %+v", r)
	}
}

func TestBuildPrivileged(t *testing.T) {
	c := baseContainer(t)
	c.Privileged = true
	c.Namespaces = Namespaces{HostNetwork: true, HostIPC: true, HostPID: true}
	s, err := Build(c, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Process.Capabilities.Effective) != len(capNames) {
		t.Errorf("privileged caps: %d", len(s.Process.Capabilities.Effective))
	}
	if s.Linux.Seccomp != nil || s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
		t.Error("privileged container is confined")
	}
	if !slices.Equal(s.Linux.Namespaces, []specs.LinuxNamespace{{Type: "mount"}}) {
		t.Errorf("host namespaces: %+v", s.Linux.Namespaces)
	}
	if m := mountAt(s, "/sys"); m == nil || m.Type != "bind" || !slices.Contains(m.Options, "rw") {
		t.Errorf("/sys on host network: %+v", m)
	}
	if r := s.Linux.Resources.Devices; len(r) != 1 || !r[0].Allow {
		t.Errorf("device rules %+v", r)
	}
	if len(s.Linux.Devices) == 0 {
		t.Error("privileged container got no host devices")
	}
}

func TestBuildUnmaskedAndExplicitPaths(t *testing.T) {
	c := baseContainer(t)
	c.ProcMountUnmasked = true
	s, err := Build(c, testOptions())
	if err != nil || s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
		t.Errorf("unmasked: %v %v %v", err, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	c.ProcMountUnmasked = false
	c.MaskedPaths, c.ReadonlyPaths = []string{"/proc/x"}, []string{}
	s, err = Build(c, testOptions())
	if err != nil || !slices.Equal(s.Linux.MaskedPaths, []string{"/proc/x"}) || len(s.Linux.ReadonlyPaths) != 0 {
		t.Errorf("explicit: %v %v %v", err, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
}

func TestBuildSeccompKinds(t *testing.T) {
	c := baseContainer(t)
	c.Seccomp = Seccomp{Kind: SeccompUnconfined}
	s, err := Build(c, testOptions())
	if err != nil || s.Linux.Seccomp != nil {
		t.Errorf("unconfined: %v %+v", err, s.Linux.Seccomp)
	}
	prof := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(prof, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["unshare"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644)
	c.Seccomp = Seccomp{Kind: SeccompLocalhost, LocalhostPath: prof}
	s, err = Build(c, testOptions())
	if err != nil || s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActAllow || len(s.Linux.Seccomp.Syscalls) != 1 {
		t.Errorf("localhost: %v %+v", err, s.Linux.Seccomp)
	}
	c.Seccomp.LocalhostPath = filepath.Join(t.TempDir(), "missing.json")
	if _, err := Build(c, testOptions()); errdefs.KindOf(err) != errdefs.KindInvalidArgument {
		t.Errorf("missing localhost profile: %v", err)
	}
	os.WriteFile(prof, []byte(`{not json`), 0o644)
	c.Seccomp.LocalhostPath = prof
	if _, err := Build(c, testOptions()); err == nil {
		t.Error("bad profile accepted")
	}
}

func TestBuildResources(t *testing.T) {
	c := baseContainer(t)
	c.Resources = Resources{CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000, CpusetCpus: "0", MemoryLimit: 64 << 20, MemorySwapLimit: 64 << 20,
		Hugepages: []Hugepage{{PageSize: "2MB", Limit: 1 << 21}}, PidsLimit: 100}
	s, err := Build(c, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	r := s.Linux.Resources
	if *r.CPU.Shares != 512 || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 || r.CPU.Cpus != "0" ||
		*r.Memory.Limit != 64<<20 || *r.Memory.Swap != 64<<20 || r.HugepageLimits[0].Pagesize != "2MB" || *r.Pids.Limit != 100 {
		t.Errorf("resources %+v", r)
	}
	for _, bad := range []Resources{
		{MemoryLimit: 64 << 20, MemorySwapLimit: 1 << 20},
		{Hugepages: []Hugepage{{PageSize: "2M"}}},
		{MemoryLimit: -1},
	} {
		c.Resources = bad
		if _, err := Build(c, testOptions()); errdefs.KindOf(err) != errdefs.KindInvalidArgument {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	// The hugetlb controller of this hybrid host is only in cgroup2: the
	// kubelet's zero limits are left out, a real one is refused.
	opts := testOptions()
	opts.Cgroups = hybridHost()
	c.Resources = Resources{CPUShares: 2, MemoryLimit: 64 << 20, MemorySwapLimit: 64 << 20, Hugepages: []Hugepage{{PageSize: "2MB"}, {PageSize: "1GB"}}}
	if s, err := Build(c, opts); err != nil || len(s.Linux.Resources.HugepageLimits) != 0 || *s.Linux.Resources.Memory.Swap != 64<<20 {
		t.Errorf("kubelet defaults on the hybrid host: %v", err)
	}
	c.Resources.Hugepages[0].Limit = 2 << 20
	if _, err := Build(c, opts); errdefs.KindOf(err) != errdefs.KindFailedPrecondition || !strings.Contains(err.Error(), "hugetlb") {
		t.Errorf("2Mi of huge pages on the hybrid host: %v", err)
	}
}

func TestBuildMounts(t *testing.T) {
	c := baseContainer(t)
	host := t.TempDir()
	c.Mounts = []Mount{
		{ContainerPath: "/data/sub", HostPath: host, Readonly: true},
		{ContainerPath: "/data", HostPath: host},
		{ContainerPath: "/etc/hosts", HostPath: filepath.Join(c.Rootfs, "etc/passwd")},
	}
	s, err := Build(c, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	var dests []string
	for _, m := range s.Mounts {
		dests = append(dests, m.Destination)
	}
	if slices.Index(dests, "/data") > slices.Index(dests, "/data/sub") {
		t.Errorf("parent mounted after child: %v", dests)
	}
	if m := mountAt(s, "/etc/hosts"); m.Source != c.Mounts[2].HostPath || strings.Count(strings.Join(dests, " "), "/etc/hosts") != 1 {
		t.Errorf("requested /etc/hosts does not replace the pod file: %v", dests)
	}
	if m := mountAt(s, "/data/sub"); !slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "rprivate") {
		t.Errorf("ro mount options %v", m.Options)
	}

	c.Mounts = []Mount{{ContainerPath: "/x", HostPath: filepath.Join(host, "missing")}}
	_, err = Build(c, testOptions())
	if errdefs.KindOf(err) != errdefs.KindInvalidArgument || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "mounts[0].host_path") {
		t.Errorf("missing host path: %v", err)
	}
	c.Mounts = []Mount{{ContainerPath: "rel", HostPath: host}}
	if _, err := Build(c, testOptions()); errdefs.KindOf(err) != errdefs.KindInvalidArgument {
		t.Errorf("relative container path: %v", err)
	}
}

func TestBuildDevices(t *testing.T) {
	c := baseContainer(t)
	c.Devices = []Device{{ContainerPath: "/dev/mynull", HostPath: "/dev/null", Permissions: "rw"}}
	s, err := Build(c, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/mynull" || s.Linux.Devices[0].Major != 1 || s.Linux.Devices[0].Minor != 3 {
		t.Errorf("devices %+v", s.Linux.Devices)
	}
	if r := s.Linux.Resources.Devices; len(r) != 2 || !r[1].Allow || r[1].Access != "rw" {
		t.Errorf("device rules %+v", r)
	}
	c.Devices = []Device{{HostPath: "/etc/passwd"}}
	if _, err := Build(c, testOptions()); errdefs.KindOf(err) != errdefs.KindInvalidArgument {
		t.Errorf("non-device: %v", err)
	}
}

func TestBuildSysctlsAndHostNetwork(t *testing.T) {
	c := baseContainer(t)
	c.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"}
	if _, err := Build(c, testOptions()); err != nil {
		t.Fatal(err)
	}
	c.Namespaces.HostNetwork = true
	c.Namespaces.NetPath = ""
	_, err := Build(c, testOptions())
	if errdefs.KindOf(err) != errdefs.KindInvalidArgument || !strings.Contains(err.Error(), "linux.sysctls") {
		t.Errorf("net sysctl on host network: %v", err)
	}
}

// EnsureSharedMount turns a private mount into a shared one.
func TestEnsureSharedMount(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	if _, shared, err := mountOf(sub); err != nil || shared {
		t.Fatalf("before: shared=%v %v", shared, err)
	}
	if err := EnsureSharedMount(sub, quiet); err != nil {
		t.Fatal(err)
	}
	mp, shared, err := mountOf(sub)
	if err != nil || !shared || mp != dir {
		t.Errorf("after: %s shared=%v %v", mp, shared, err)
	}
	// And an rshared mount request passes it through.
	c := baseContainer(t)
	c.Mounts = []Mount{{ContainerPath: "/m", HostPath: sub, Propagation: PropagationBidir}}
	s, err := Build(c, testOptions())
	if err != nil || s.Linux.RootfsPropagation != "rshared" || !slices.Contains(mountAt(s, "/m").Options, "rshared") {
		t.Errorf("rshared mount: %v", err)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	if got := unescapeMountinfo(`/a\040b\134c`); got != `/a b\c` {
		t.Errorf("got %q", got)
	}
}

func TestExecProcess(t *testing.T) {
	s, err := Build(baseContainer(t), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	p, err := ExecProcess(s, []string{"cat", "/etc/hostname"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Args, []string{"cat", "/etc/hostname"}) || p.User.UID != 1000 || p.Cwd != "/srv" || !slices.Equal(p.Env, s.Process.Env) ||
		!slices.Equal(p.Capabilities.Effective, s.Process.Capabilities.Effective) || p.OOMScoreAdj != nil {
		t.Errorf("exec process %+v", p)
	}
	if slices.Equal(s.Process.Args, p.Args) {
		t.Error("container spec modified")
	}
	if _, err := ExecProcess(s, nil, false); errdefs.KindOf(err) != errdefs.KindInvalidArgument {
		t.Errorf("empty exec: %v", err)
	}
}

func TestBuildHostnameOnlyForOwnUTS(t *testing.T) {
	c := baseContainer(t)
	s, _ := Build(c, testOptions())
	if s.Hostname != "" {
		t.Errorf("hostname set while joining the pod's UTS namespace: %q", s.Hostname)
	}
	c.Namespaces.UTSPath = ""
	s, _ = Build(c, testOptions())
	if s.Hostname != "pod-a" {
		t.Errorf("own UTS namespace hostname %q", s.Hostname)
	}
}

func TestBuildRecursiveReadonlyMounts(t *testing.T) {
	c := baseContainer(t)
	host := t.TempDir()
	c.Mounts = []Mount{{ContainerPath: "/data", HostPath: host, Readonly: true, RecursiveReadonly: true}}
	s, err := Build(c, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if m := mountAt(s, "/data"); !slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "rro") {
		t.Errorf("recursive read-only mount options %v", m.Options)
	}
	for _, bad := range []Mount{
		{ContainerPath: "/data", HostPath: host, RecursiveReadonly: true},
		{ContainerPath: "/data", HostPath: host, Readonly: true, RecursiveReadonly: true, Propagation: PropagationHostToCt},
	} {
		c.Mounts = []Mount{bad}
		if _, err := Build(c, testOptions()); errdefs.KindOf(err) != errdefs.KindInvalidArgument || !strings.Contains(err.Error(), "recursive_read_only") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

func TestBuildMountOptions(t *testing.T) {
	c := baseContainer(t)
	host := t.TempDir()
	c.Mounts = []Mount{{ContainerPath: "/data", HostPath: host, Options: []string{"noexec", "nosuid"}}}
	s, err := Build(c, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if m := mountAt(s, "/data"); !slices.Contains(m.Options, "noexec") || !slices.Contains(m.Options, "nosuid") {
		t.Errorf("options %v", m.Options)
	}
	for _, bad := range []string{"rshared", "rw", "size=1m", "bind"} {
		c.Mounts = []Mount{{ContainerPath: "/data", HostPath: host, Options: []string{bad}}}
		if _, err := Build(c, testOptions()); errdefs.KindOf(err) != errdefs.KindInvalidArgument || !strings.Contains(err.Error(), "mount_options[0]") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
