package ocispec

import (
	"bytes"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/floe-cri/floe/internal/hooks"
)

func withDefaults(d *NodeDefaults) Options {
	o := testOptions()
	o.Defaults = func() *NodeDefaults { return d }
	return o
}

func TestParseDefaultSysctls(t *testing.T) {
	got, err := ParseDefaultSysctls([]string{"net.ipv4.ip_unprivileged_port_start=0", "net/ipv4/ping_group_range=0 2147483647", " kernel.shm_rmid_forced =1", "net.ipv4.ip_unprivileged_port_start=80"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"net.ipv4.ip_unprivileged_port_start": "80", "net.ipv4.ping_group_range": "0 2147483647", "kernel.shm_rmid_forced": "1"}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for entry, wantErr := range map[string]string{
		"net.ipv4.ip_forward":      "not name=value",
		"=1":                       "not name=value",
		"kernel.hostname=x":        "not a namespaced sysctl",
		"vm.overcommit_memory=1":   "not a namespaced sysctl",
		"net.ipv4..x=1":            "malformed sysctl name",
		"net.ipv4.ip_forward=1\n0": "control character",
		"net.core.somaxconn=" + strings.Repeat("1", 5000): "at most 4096",
	} {
		if _, err := ParseDefaultSysctls([]string{entry}); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%q: err %v, want %q", entry, err, wantErr)
		}
	}
}

func TestParseUlimits(t *testing.T) {
	got, err := ParseUlimits([]string{"nofile=1024:2048", "nproc=500", "core=-1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []specs.POSIXRlimit{
		{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 2048},
		{Type: "RLIMIT_NPROC", Soft: 500, Hard: 500},
		{Type: "RLIMIT_CORE", Soft: math.MaxUint64, Hard: math.MaxUint64},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for entry, wantErr := range map[string]string{
		"files=10":         "invalid ulimit type",
		"nofile":           "invalid ulimit argument",
		"nofile=2048:1024": "soft limit must be less than or equal to hard",
		"nofile=x":         "invalid syntax",
		"nofile=1:2:3":     "too many",
		"nofile=-5:-5":     "0 or more, or -1",
		"NOFILE=1":         "invalid ulimit type",
		"nofile=-1:100":    "soft limit must be less",
		"nofile=1:-3":      "soft limit must be less",
		"nofile=1\x00:2":   "invalid syntax",
	} {
		if _, err := ParseUlimits([]string{entry}); err == nil || !strings.Contains(err.Error(), wantErr) || !strings.Contains(err.Error(), "nofile, nproc") && !strings.Contains(err.Error(), "0 or more") {
			t.Errorf("%q: err %v, want %q and the allowed names", entry, err, wantErr)
		}
	}
	if _, err := ParseUlimits([]string{"nofile=1", "nofile=2"}); err == nil || !strings.Contains(err.Error(), "set twice") {
		t.Errorf("duplicate: %v", err)
	}
}

func TestPodSysctlsOverrideDefaultsAndHostNamespacesSkipThem(t *testing.T) {
	d := &NodeDefaults{Sysctls: map[string]string{
		"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647", "kernel.shm_rmid_forced": "1",
	}}
	c := baseContainer(t)
	// The pod's own value wins, whichever spelling it uses.
	c.Sysctls = map[string]string{"net/ipv4/ip_unprivileged_port_start": "1024", "net.core.somaxconn": "512"}
	s, err := Build(c, withDefaults(d))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"net.ipv4.ip_unprivileged_port_start": "1024", "net.ipv4.ping_group_range": "0 2147483647",
		"kernel.shm_rmid_forced": "1", "net.core.somaxconn": "512"}
	if !maps.Equal(s.Linux.Sysctl, want) {
		t.Errorf("sysctls %v, want %v", s.Linux.Sysctl, want)
	}

	c = baseContainer(t)
	c.Namespaces = Namespaces{HostNetwork: true, IPCPath: "/run/floe/ipc"}
	if s, err = Build(c, withDefaults(d)); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"kernel.shm_rmid_forced": "1"}; !maps.Equal(s.Linux.Sysctl, want) {
		t.Errorf("host network: sysctls %v, want only %v", s.Linux.Sysctl, want)
	}
	c.Namespaces = Namespaces{HostNetwork: true, HostIPC: true}
	if s, err = Build(c, withDefaults(d)); err != nil {
		t.Fatal(err)
	}
	if s.Linux.Sysctl != nil {
		t.Errorf("host network and IPC: sysctls %v, want none", s.Linux.Sysctl)
	}
	// A pod's own host-namespace sysctl is still refused, defaults or not.
	c.Sysctls = map[string]string{"net.core.somaxconn": "512"}
	if _, err := Build(c, withDefaults(d)); err == nil || !strings.Contains(err.Error(), "host network") {
		t.Errorf("pod net sysctl with host network: %v", err)
	}
}

func TestNodeDefaultsRlimitsAndPidsLimit(t *testing.T) {
	rl := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 2048}}
	d := &NodeDefaults{Rlimits: rl, PidsLimit: 321}
	c := baseContainer(t)
	s, err := Build(c, withDefaults(d))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Process.Rlimits, rl) {
		t.Errorf("rlimits %+v", s.Process.Rlimits)
	}
	if p := s.Linux.Resources.Pids; p == nil || p.Limit == nil || *p.Limit != 321 {
		t.Errorf("pids %+v, want 321", p)
	}
	// Execs run with the container's limits.
	ep, err := ExecProcess(s, []string{"sh"}, false)
	if err != nil || !slices.Equal(ep.Rlimits, rl) {
		t.Errorf("exec rlimits %+v %v", ep.Rlimits, err)
	}
	// The spec's rlimits are its own copy.
	s.Process.Rlimits[0].Soft = 1
	if rl[0].Soft != 1024 {
		t.Error("spec shares the defaults' rlimits")
	}

	c.Resources.PidsLimit = 50
	if s, err = Build(c, withDefaults(d)); err != nil {
		t.Fatal(err)
	}
	if p := s.Linux.Resources.Pids; p == nil || *p.Limit != 50 {
		t.Errorf("container's own pids limit lost: %+v", p)
	}
	for _, unlimited := range []int64{0, -1} {
		s, err := Build(baseContainer(t), withDefaults(&NodeDefaults{PidsLimit: unlimited}))
		if err != nil {
			t.Fatal(err)
		}
		if s.Linux.Resources.Pids != nil || s.Process.Rlimits != nil {
			t.Errorf("pids_limit %d: pids %+v rlimits %+v", unlimited, s.Linux.Resources.Pids, s.Process.Rlimits)
		}
	}
}

// denyMkdirProfile is a docker-format profile allowing everything but
// mkdir and mkdirat, which fail with EPERM.
const denyMkdirProfile = `{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]}],
 "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
  {"names":["unshare"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}`

func TestSeccompProfileFromPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "deny-mkdir.json")
	if err := os.WriteFile(path, []byte(denyMkdirProfile), 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := LoadSeccompProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := &NodeDefaults{SeccompProfile: data, SeccompProfilePath: path}
	s, err := Build(baseContainer(t), withDefaults(d))
	if err != nil {
		t.Fatal(err)
	}
	sc := s.Linux.Seccomp
	if sc == nil || sc.DefaultAction != specs.ActAllow || len(sc.Syscalls) != 1 || !slices.Equal(sc.Syscalls[0].Names, []string{"mkdir", "mkdirat"}) {
		t.Fatalf("RuntimeDefault with seccomp_profile: %+v", sc)
	}
	// The profile is evaluated per container: CAP_SYS_ADMIN brings its rule.
	c := baseContainer(t)
	c.Capabilities.Add = []string{"SYS_ADMIN"}
	if s, err = Build(c, withDefaults(d)); err != nil || len(s.Linux.Seccomp.Syscalls) != 2 {
		t.Errorf("with CAP_SYS_ADMIN: %v %+v", err, s.Linux.Seccomp)
	}
	// Unconfined and Localhost do not use it.
	c = baseContainer(t)
	c.Seccomp = Seccomp{Kind: SeccompUnconfined}
	if s, _ = Build(c, withDefaults(d)); s.Linux.Seccomp != nil {
		t.Errorf("Unconfined got %+v", s.Linux.Seccomp)
	}
	local := filepath.Join(dir, "local.json")
	os.WriteFile(local, []byte(`{"defaultAction":"SCMP_ACT_LOG"}`), 0o644)
	c.Seccomp = Seccomp{Kind: SeccompLocalhost, LocalhostPath: local}
	if s, _ = Build(c, withDefaults(d)); s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActLog {
		t.Errorf("Localhost got %+v", s.Linux.Seccomp)
	}

	for name, body := range map[string]string{
		"not json":       `{"defaultAction":`,
		"no action":      `{}`,
		"unknown action": `{"defaultAction":"SCMP_ACT_MAYBE"}`,
		"rule action":    `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"DENY"}]}`,
		"name and names": `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}`,
	} {
		p := filepath.Join(dir, "bad.json")
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := LoadSeccompProfile(p); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	if _, err := LoadSeccompProfile(filepath.Join(dir, "absent.json")); err == nil {
		t.Error("absent file loaded")
	}
}

func TestNodeDefaultsHooksMatchTheBuiltSpec(t *testing.T) {
	bin, _ := os.Executable()
	dir := t.TempDir()
	hook := `{"version":"1.0.0","hook":{"path":"` + bin + `"},"when":{"commands":["^/bin/app$"],"annotations":{"^example\\.com/trace$":"^on$"}},"stages":["createRuntime","poststop"]}`
	if err := os.WriteFile(filepath.Join(dir, "10-trace.json"), []byte(hook), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	d := &NodeDefaults{Hooks: hooks.Load([]string{dir}, quiet)}
	opts := withDefaults(d)
	opts.Log = slog.New(slog.NewTextHandler(&logs, nil))
	c := baseContainer(t)
	c.Annotations = map[string]string{"example.com/trace": "on"}
	s, err := Build(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s.Hooks == nil || len(s.Hooks.CreateRuntime) != 1 || len(s.Hooks.Poststop) != 1 || s.Hooks.CreateRuntime[0].Path != bin {
		t.Fatalf("hooks %+v", s.Hooks)
	}
	if !strings.Contains(logs.String(), "10-trace.json") || !strings.Contains(logs.String(), "container=c1") {
		t.Errorf("no log line naming the hook and container: %s", logs.String())
	}
	// The command of the final spec counts (the image entrypoint here).
	c.Command = []string{"/bin/other"}
	if s, err = Build(c, opts); err != nil || s.Hooks != nil {
		t.Errorf("other command: %v %+v", err, s.Hooks)
	}
}

func TestCheckRlimitsSettable(t *testing.T) {
	var own unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &own); err != nil {
		t.Fatal(err)
	}
	procSys := t.TempDir()
	os.MkdirAll(filepath.Join(procSys, "fs"), 0o755)
	os.WriteFile(filepath.Join(procSys, "fs", "nr_open"), []byte("1048576\n"), 0o644)
	if err := CheckRlimitsSettable([]specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1, Hard: min(own.Max, 1048576)}}, procSys); err != nil {
		t.Errorf("own hard limit refused: %v", err)
	}
	if err := CheckRlimitsSettable([]specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1, Hard: 1048577}}, procSys); err == nil {
		t.Error("nofile above fs.nr_open accepted")
	}
	eff, err := effectiveCaps()
	if err != nil {
		t.Fatal(err)
	}
	if eff&(1<<capSysResource) != 0 || own.Max >= 1048576 {
		t.Skip("floe may raise its nofile limit here (CAP_SYS_RESOURCE, or already at fs.nr_open)")
	}
	err = CheckRlimitsSettable([]specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1, Hard: own.Max + 1}}, procSys)
	if err == nil || !strings.Contains(err.Error(), "CAP_SYS_RESOURCE") {
		t.Errorf("nofile above floe's own without CAP_SYS_RESOURCE: %v", err)
	}
}

func TestDefaultPingGroupRangeFitsTheUserNamespace(t *testing.T) {
	d := &NodeDefaults{Sysctls: map[string]string{"net.ipv4.ping_group_range": "0 2147483647", "net.ipv4.ip_unprivileged_port_start": "0"}}
	c := baseContainer(t)
	c.Namespaces.UserPath = "/run/floe/userns/p"
	c.Namespaces.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	c.Namespaces.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	s, err := Build(c, withDefaults(d))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Linux.Sysctl["net.ipv4.ping_group_range"]; got != "0 65535" {
		t.Errorf("ping_group_range in a 65536-gid user namespace = %q, want \"0 65535\"", got)
	}
	if got := s.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"]; got != "0" {
		t.Errorf("other defaults must stay: %q", got)
	}
	// The pod's own value is its own business.
	c.Sysctls = map[string]string{"net.ipv4.ping_group_range": "0 2147483647"}
	if s, _ = Build(c, withDefaults(d)); s.Linux.Sysctl["net.ipv4.ping_group_range"] != "0 2147483647" {
		t.Errorf("pod value changed: %q", s.Linux.Sysctl["net.ipv4.ping_group_range"])
	}

	for _, tc := range []struct {
		value string
		maps  []specs.LinuxIDMapping
		want  string
		ok    bool
	}{
		{"0 2147483647", []specs.LinuxIDMapping{{ContainerID: 0, Size: 1}}, "0 0", true},
		{"0 2147483647", []specs.LinuxIDMapping{{ContainerID: 1000, Size: 10}, {ContainerID: 0, Size: 1}}, "0 1009", true},
		{"5 20", []specs.LinuxIDMapping{{ContainerID: 0, Size: 10}}, "5 9", true},
		{"100 200", []specs.LinuxIDMapping{{ContainerID: 0, Size: 10}}, "", false},
		{"1 0", []specs.LinuxIDMapping{{ContainerID: 0, Size: 10}}, "", false},
		{"garbage", []specs.LinuxIDMapping{{ContainerID: 0, Size: 10}}, "", false},
		{"0 10", nil, "", false},
	} {
		got, ok := pingRangeInUserns(tc.value, tc.maps)
		if got != tc.want || ok != tc.ok {
			t.Errorf("pingRangeInUserns(%q, %v) = %q %v, want %q %v", tc.value, tc.maps, got, ok, tc.want, tc.ok)
		}
	}
	// No mapped gid in the range: the default is left out.
	c.Sysctls = nil
	c.Namespaces.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 0}}
	if s, _ = Build(c, withDefaults(d)); s.Linux.Sysctl["net.ipv4.ping_group_range"] != "" {
		t.Errorf("unfittable default kept: %q", s.Linux.Sysctl["net.ipv4.ping_group_range"])
	}
}
