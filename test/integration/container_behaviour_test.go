package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ociv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/inspect"
	"github.com/floe-cri/floe/internal/monitor"
	"github.com/floe-cri/floe/test/fixtures"
	"github.com/floe-cri/floe/test/harness"
)

// output is everything the container wrote to its CRI log, stdout then
// stderr.
func (e *containerEnv) output(t *testing.T, id string) string {
	t.Helper()
	st := e.status(t, id)
	f, err := os.Open(st.LogPath)
	if err != nil {
		t.Fatalf("open log of %s: %v", id, err)
	}
	defer f.Close()
	stdout, stderr, err := monitor.ReadLog(f)
	if err != nil {
		t.Fatalf("read log of %s: %v", id, err)
	}
	return string(stdout) + string(stderr)
}

// runToExit runs cfg to its end and returns its status and output.
func (e *containerEnv) runToExit(t *testing.T, cfg *runtimeapi.ContainerConfig) (*runtimeapi.ContainerStatus, string) {
	t.Helper()
	id := e.run(t, cfg)
	st := e.waitExited(t, id)
	return st, strings.TrimSpace(e.output(t, id))
}

func (e *containerEnv) exec(t *testing.T, id string, cmd ...string) (string, int32) {
	t.Helper()
	resp, err := e.d.Runtime.ExecSync(harness.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 20})
	if err != nil {
		t.Fatalf("ExecSync %v: %v", cmd, err)
	}
	return strings.TrimSpace(string(resp.Stdout) + string(resp.Stderr)), resp.ExitCode
}

func (e *containerEnv) sc(cfg *runtimeapi.ContainerConfig) *runtimeapi.LinuxContainerSecurityContext {
	return cfg.Linux.SecurityContext
}

func i64(v int64) *runtimeapi.Int64Value { return &runtimeapi.Int64Value{Value: v} }

// epImage is busybox with an entrypoint, cmd, env and stop signal of its
// own, for the merge rules.
func epImage(t *testing.T) *fixtures.Image {
	img := fixtures.Busybox(t)
	img.Config = ociv1.ImageConfig{
		Entrypoint: []string{"/bin/echo", "ep"},
		Cmd:        []string{"cmd1", "cmd2"},
		Env:        []string{"PATH=/bin", "A=img-a", "B=img-b"},
		WorkingDir: "/tmp",
		StopSignal: "SIGUSR1",
	}
	return img
}

func TestContainerUsersEnvArgsAndWorkingDir(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnvWith(t, containerEnvOptions{Images: map[string]*fixtures.Image{"busybox:ep": epImage(t)}})
	userCases := []struct {
		name string
		set  func(*runtimeapi.LinuxContainerSecurityContext)
		want string
	}{
		{"image-user", func(*runtimeapi.LinuxContainerSecurityContext) {}, "uid=1000(floe) gid=1000(floe) groups=1000(floe)"},
		{"uid-0", func(s *runtimeapi.LinuxContainerSecurityContext) { s.RunAsUser = i64(0) }, "uid=0(root) gid=0(root) groups=0(root)"},
		{"uid-1000", func(s *runtimeapi.LinuxContainerSecurityContext) { s.RunAsUser = i64(1000) }, "uid=1000(floe) gid=1000(floe) groups=1000(floe)"},
		{"username", func(s *runtimeapi.LinuxContainerSecurityContext) { s.RunAsUsername = "nobody" }, "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"},
		{"uid-gid", func(s *runtimeapi.LinuxContainerSecurityContext) { s.RunAsUser, s.RunAsGroup = i64(1234), i64(5678) }, "uid=1234 gid=5678 groups=5678"},
		{"supplemental", func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.RunAsUser, s.SupplementalGroups = i64(1000), []int64{65534, 4242}
		}, "uid=1000(floe) gid=1000(floe) groups=1000(floe),4242,65534(nogroup)"},
	}
	for _, c := range userCases {
		cfg := e.config("user-"+c.name, "id")
		c.set(e.sc(cfg))
		st, out := e.runToExit(t, cfg)
		if st.ExitCode != 0 || normalizeGroups(out) != normalizeGroups(c.want) {
			t.Errorf("%s: id = %q (exit %d), want %q", c.name, out, st.ExitCode, c.want)
		}
		// ContainerStatus reports the same identity.
		if u := st.GetUser().GetLinux(); u == nil || !strings.HasPrefix(out, fmt.Sprintf("uid=%d", u.Uid)) || !strings.Contains(out, fmt.Sprintf("gid=%d", u.Gid)) {
			t.Errorf("%s: status user %v, id says %q", c.name, u, out)
		}
	}

	// A user the image does not have fails the creation, naming it, and
	// leaves nothing behind.
	bad := e.config("user-missing", "id")
	e.sc(bad).RunAsUsername = "nosuchuser"
	if _, err := e.d.Runtime.CreateContainer(harness.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: bad, SandboxConfig: e.podCfg}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "nosuchuser") {
		t.Errorf("unknown run_as_username: %v", err)
	}

	// An ephemeral (debug) container in the PID namespace of a target
	// container sees its processes.
	target := e.run(t, e.config("target", "sleep", "1000"))
	debug := e.config("debug", "ps", "-o", "args")
	e.sc(debug).NamespaceOptions = &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Ipc: runtimeapi.NamespaceMode_POD,
		Pid: runtimeapi.NamespaceMode_TARGET, TargetId: target}
	if _, out := e.runToExit(t, debug); !strings.Contains(out, "sleep 1000") {
		t.Errorf("debug container in the target's PID namespace sees:\n%s", out)
	}

	ep := e.images["busybox:ep"]
	mergeCases := []struct {
		name          string
		command, args []string
		want          string
	}{
		{"image-defaults", nil, nil, "ep cmd1 cmd2"},
		{"args-replace-cmd", nil, []string{"a1"}, "ep a1"},
		{"command-drops-cmd", []string{"/bin/echo", "c"}, nil, "c"},
		{"command-and-args", []string{"/bin/echo", "c"}, []string{"a1", "a2"}, "c a1 a2"},
	}
	for _, c := range mergeCases {
		cfg := e.config("merge-"+c.name, c.command...)
		cfg.Image.Image, cfg.Args = ep, c.args
		if st, out := e.runToExit(t, cfg); st.ExitCode != 0 || out != c.want {
			t.Errorf("%s: output %q (exit %d), want %q", c.name, out, st.ExitCode, c.want)
		}
	}
	cfg := e.config("env", "sh", "-c", `echo "$A $B $C $PATH $(pwd)"`)
	cfg.Image.Image = ep
	cfg.Envs = []*runtimeapi.KeyValue{{Key: "B", Value: []byte("req-b")}, {Key: "C", Value: []byte("req-c")}}
	if _, out := e.runToExit(t, cfg); out != "img-a req-b req-c /bin /tmp" {
		t.Errorf("env merge and image working dir: %q", out)
	}
	cfg = e.config("workdir", "pwd")
	cfg.WorkingDir = "/etc"
	if _, out := e.runToExit(t, cfg); out != "/etc" {
		t.Errorf("working_dir: %q", out)
	}
	if _, out := e.runToExit(t, e.config("image-workdir", "pwd")); out != "/home/floe" {
		t.Errorf("image working dir: %q", out)
	}
}

// normalizeGroups sorts the groups= list: its order is not part of the
// contract.
func normalizeGroups(s string) string {
	head, groups, ok := strings.Cut(s, "groups=")
	if !ok {
		return s
	}
	parts := strings.Split(groups, ",")
	for i := range parts {
		for j := i + 1; j < len(parts); j++ {
			if parts[j] < parts[i] {
				parts[i], parts[j] = parts[j], parts[i]
			}
		}
	}
	return head + "groups=" + strings.Join(parts, ",")
}

// capMask is the CapEff bit mask of the named capabilities.
func capMask(bits ...uint) string {
	var m uint64
	for _, b := range bits {
		m |= 1 << b
	}
	return fmt.Sprintf("%016x", m)
}

func ownCapBnd(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("no CapBnd")
	return ""
}

func TestContainerSecurityContextCapsSeccompSysctlsReadonly(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnvWith(t, containerEnvOptions{Pod: func(p *runtimeapi.PodSandboxConfig) {
		p.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "81"}
	}})
	// The fourteen default capabilities, by number.
	defaults := []uint{0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31}
	capCases := []struct {
		name string
		set  func(*runtimeapi.LinuxContainerSecurityContext)
		want string
	}{
		{"default", func(*runtimeapi.LinuxContainerSecurityContext) {}, capMask(defaults...)},
		{"add", func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN", "CAP_SYS_PTRACE"}}
		}, capMask(append(defaults, 12, 19)...)},
		{"drop", func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"CHOWN"}}
		}, capMask(0)},
		{"privileged", func(s *runtimeapi.LinuxContainerSecurityContext) { s.Privileged = true }, ownCapBnd(t)},
	}
	for _, c := range capCases {
		cfg := e.config("caps-"+c.name, "sh", "-c", "grep CapEff /proc/1/status")
		e.sc(cfg).RunAsUser = i64(0)
		c.set(e.sc(cfg))
		st, out := e.runToExit(t, cfg)
		if got := strings.TrimSpace(strings.TrimPrefix(out, "CapEff:")); st.ExitCode != 0 || got != c.want {
			t.Errorf("%s: CapEff %q (exit %d), want %s", c.name, out, st.ExitCode, c.want)
		}
	}

	// Creating a user namespace needs no capability, so only seccomp
	// stands between the container and unshare(2).
	seccomp := func(name string, kind runtimeapi.SecurityProfile_ProfileType) (int32, string) {
		cfg := e.config("seccomp-"+name, "unshare", "-U", "true")
		e.sc(cfg).RunAsUser = i64(0)
		e.sc(cfg).Seccomp = &runtimeapi.SecurityProfile{ProfileType: kind}
		st, out := e.runToExit(t, cfg)
		return st.ExitCode, out
	}
	if code, out := seccomp("default", runtimeapi.SecurityProfile_RuntimeDefault); code == 0 || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("RuntimeDefault let unshare through: exit %d %q", code, out)
	}
	if code, out := seccomp("unconfined", runtimeapi.SecurityProfile_Unconfined); code != 0 {
		t.Errorf("Unconfined blocked unshare: exit %d %q", code, out)
	}

	if _, out := e.runToExit(t, e.config("sysctl", "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start")); out != "81" {
		t.Errorf("pod sysctl: %q", out)
	}

	cfg := e.config("readonly", "sh", "-c", "touch /rootfile 2>&1; echo rc=$?; touch /dev/shm/ok && echo shm-ok")
	e.sc(cfg).RunAsUser = i64(0)
	e.sc(cfg).ReadonlyRootfs = true
	if _, out := e.runToExit(t, cfg); !strings.Contains(out, "Read-only file system") || !strings.Contains(out, "rc=1") || !strings.Contains(out, "shm-ok") {
		t.Errorf("read-only rootfs: %q", out)
	}
	cfg = e.config("writable", "sh", "-c", "touch /rootfile && echo ok")
	e.sc(cfg).RunAsUser = i64(0)
	if _, out := e.runToExit(t, cfg); out != "ok" {
		t.Errorf("writable rootfs: %q", out)
	}
}

// kubeletCgroup creates a pod cgroup the way the kubelet does (under the
// cpu, memory and pids v1 controllers) and removes it, with every
// hierarchy's copy runc made, at the end. pidsMax > 0 sets the pod's pid
// limit (the kubelet's podPidsLimit).
func kubeletCgroup(t *testing.T, pidsMax int) string {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		t.Skip("this test drives cgroup v1 hierarchies")
	}
	top := "/floetest-" + harness.Short()
	path := top + "/pod" + harness.Short()
	for _, c := range []string{"cpu", "memory", "pids"} {
		if err := os.MkdirAll(filepath.Join("/sys/fs/cgroup", c, path), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if pidsMax > 0 {
		if err := os.WriteFile(filepath.Join("/sys/fs/cgroup/pids", path, "pids.max"), []byte(strconv.Itoa(pidsMax)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { removeCgroupTree(top) })
	return path
}

// removeCgroupTree removes dir and every cgroup below it in every
// hierarchy, deepest first.
func removeCgroupTree(dir string) {
	ctrls, _ := os.ReadDir("/sys/fs/cgroup")
	for _, c := range ctrls {
		root := filepath.Join("/sys/fs/cgroup", c.Name(), dir)
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			for try := 0; try < 50; try++ {
				if err := os.Remove(dirs[i]); err == nil || os.IsNotExist(err) || !strings.Contains(err.Error(), "busy") {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

func cgroupFile(t *testing.T, ctrl, path, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", ctrl, path, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func TestContainerCgroupLimitsUpdateOOMAndOOMScoreAdj(t *testing.T) {
	harness.CheckLeaks(t)
	parent := kubeletCgroup(t, 240)
	e := newContainerEnvWith(t, containerEnvOptions{Pod: func(p *runtimeapi.PodSandboxConfig) { p.Linux.CgroupParent = parent }})
	cfg := e.config("limited", "sleep", "1000")
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512,
		MemoryLimitInBytes: 64 << 20, OomScoreAdj: -997}
	id := e.run(t, cfg)
	cg := parent + "/floe-" + id
	// The container's own pids cgroup is unlimited (CRI has no per-container
	// pid limit); the pod's limit above it (the kubelet's podPidsLimit)
	// holds it, as cgroup limits are hierarchical.
	for _, f := range []struct{ ctrl, name, want string }{
		{"cpu", "cpu.cfs_quota_us", "50000"}, {"cpu", "cpu.cfs_period_us", "100000"}, {"cpu", "cpu.shares", "512"},
		{"memory", "memory.limit_in_bytes", strconv.Itoa(64 << 20)},
		{"pids", "pids.max", "max"}, {"pids", "../pids.max", "240"},
	} {
		if got := cgroupFile(t, f.ctrl, cg, f.name); got != f.want {
			t.Errorf("%s/%s = %s, want %s", f.ctrl, f.name, got, f.want)
		}
	}
	// A Guaranteed pod's -997 is raised to what floe may set, and said.
	if out, _ := e.exec(t, id, "cat", "/proc/1/oom_score_adj"); out != ownOOMScoreAdj(t) {
		t.Errorf("oom_score_adj = %s, want floe's own %s", out, ownOOMScoreAdj(t))
	}
	if !strings.Contains(e.d.Log(), "oom_score_adj raised to what floe may set") {
		t.Errorf("no log line for the clamped oom_score_adj")
	}
	_, err := e.d.Runtime.UpdateContainerResources(harness.Ctx(t), &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id,
		Linux: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 20000, CpuShares: 256, MemoryLimitInBytes: 32 << 20}})
	if err != nil {
		t.Fatalf("UpdateContainerResources: %v", err)
	}
	if r := e.status(t, id).GetResources().GetLinux(); r.GetCpuQuota() != 20000 || r.GetMemoryLimitInBytes() != 32<<20 {
		t.Errorf("status resources after update: %v", r)
	}
	for _, f := range []struct{ ctrl, name, want string }{
		{"cpu", "cpu.cfs_quota_us", "20000"}, {"cpu", "cpu.shares", "256"}, {"memory", "memory.limit_in_bytes", strconv.Itoa(32 << 20)},
	} {
		if got := cgroupFile(t, f.ctrl, cg, f.name); got != f.want {
			t.Errorf("after update %s/%s = %s, want %s", f.ctrl, f.name, got, f.want)
		}
	}

	oom := e.config("oom", "sh", "-c", "x=aaaaaaaa; while true; do x=$x$x; done")
	oom.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 16 << 20}
	if st, _ := e.runToExit(t, oom); st.Reason != "OOMKilled" || st.ExitCode != 137 {
		t.Errorf("OOM: reason %q exit %d", st.Reason, st.ExitCode)
	}
	if _, err := e.d.Runtime.StopPodSandbox(harness.Ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(harness.Ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", cg)); !os.IsNotExist(err) {
		t.Errorf("container cgroup left after the pod was removed: %v", err)
	}
}

func ownOOMScoreAdj(t *testing.T) string {
	data, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func TestContainerSliceParentUnderCgroupfsIsExpanded(t *testing.T) {
	harness.CheckLeaks(t)
	top := "floetest" + harness.Short()
	slice := top + "-pod" + harness.Short() + ".slice"
	t.Cleanup(func() { removeCgroupTree("/" + top + ".slice"); removeCgroupTree("/" + slice) })
	e := newContainerEnvWith(t, containerEnvOptions{Pod: func(p *runtimeapi.PodSandboxConfig) { p.Linux.CgroupParent = slice }})
	id := e.run(t, e.config("sliced", "sleep", "1000"))
	want := filepath.Join("/sys/fs/cgroup/memory", top+".slice", slice, "floe-"+id)
	if _, err := os.Stat(want); err != nil {
		t.Errorf("container cgroup not at the expanded slice path: %v", err)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", slice)); !os.IsNotExist(err) {
		t.Errorf("the slice name was taken literally as a directory: %v", err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(harness.Ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
	// A RuntimeClass handler floe does not have is refused naming the
	// ones it has.
	_, err := e.d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig("kata"), RuntimeHandler: "kata"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "configured handlers: runc") {
		t.Errorf("unknown runtime handler: %v", err)
	}
}

func TestContainerSharedPIDNamespaceInitReapsAndStops(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnvWith(t, containerEnvOptions{Pod: func(p *runtimeapi.PodSandboxConfig) {
		p.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	}})
	cfgFor := func(name string) *runtimeapi.ContainerConfig {
		cfg := e.config(name, "sleep", "1000")
		e.sc(cfg).NamespaceOptions = &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Ipc: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_POD}
		return cfg
	}
	a := e.run(t, cfgFor("a"))
	b := e.run(t, cfgFor("b"))
	if out, _ := e.exec(t, a, "cat", "/proc/1/cmdline"); !strings.HasPrefix(out, "floe-pod-init") {
		t.Errorf("PID 1 of the pod is %q", out)
	}
	// Both containers' sleeps are visible from either one.
	if out, _ := e.exec(t, b, "ps", "-o", "pid,args"); strings.Count(out, "sleep 1000") != 2 || !strings.Contains(out, "floe-pod-init") {
		t.Errorf("ps in the shared namespace:\n%s", out)
	}
	// An orphan (its parent shell exits at once) is reparented to the
	// init, which must reap it when it exits.
	e.exec(t, a, "sh", "-c", "sleep 0.3 </dev/null >/dev/null 2>&1 & exit 0")
	time.Sleep(1500 * time.Millisecond)
	if out, _ := e.exec(t, b, "ps", "-o", "stat,args"); strings.Contains(out, "Z ") || strings.Contains(out, "defunct") {
		t.Errorf("a zombie was left in the pod:\n%s", out)
	}
	initPid := podInitPid(t, e, a)
	if _, err := e.d.Runtime.StopPodSandbox(harness.Ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{a, b} {
		if st := e.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			t.Errorf("container %s after StopPodSandbox: %v", id, st.State)
		}
	}
	if !goneOrZombie(initPid, 3*time.Second) {
		t.Errorf("pod init %d still runs after StopPodSandbox", initPid)
	}
}

// podInitPid finds the host pid of the container's PID 1 (the pod init).
func podInitPid(t *testing.T, e *containerEnv, id string) int {
	t.Helper()
	resp, err := e.d.Runtime.ContainerStatus(harness.Ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscanf(resp.Info["info"][strings.Index(resp.Info["info"], `"pid":`):], `"pid":%d`, &pid); err != nil {
		t.Fatalf("no pid in %s", resp.Info["info"])
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		p, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if n, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p)); n == ns && strings.HasPrefix(string(cmd), "floe-pod-init") {
			return p
		}
	}
	t.Fatal("pod init not found")
	return 0
}

func TestContainerStopTimeoutStopSignalAndPromptLists(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnvWith(t, containerEnvOptions{Images: map[string]*fixtures.Image{"busybox:ep": epImage(t)}})
	ctx := harness.Ctx(t)
	stubborn := e.run(t, e.config("stubborn", "sh", "-c", `trap "echo got-term" TERM; echo ready; while true; do sleep 0.1; done`))
	waitLog(t, e, stubborn, "ready")
	const timeout = 4
	stopped := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := e.d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: stubborn, Timeout: timeout})
		stopped <- err
	}()
	// While the stop waits out its timeout, lists and status answer.
	time.Sleep(500 * time.Millisecond)
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		if _, err := e.d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); err != nil {
			t.Fatal(err)
		}
		st := e.status(t, stubborn)
		if took := time.Since(t0); took > time.Second {
			t.Errorf("ListContainers+ContainerStatus took %v during a stop", took)
		}
		if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("state during the stop timeout: %v", st.State)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	took := time.Since(start)
	st := e.status(t, stubborn)
	if took < timeout*time.Second || took > (timeout+5)*time.Second || st.ExitCode != 137 {
		t.Errorf("stop took %v with timeout %ds, exit %d", took, timeout, st.ExitCode)
	}
	if !strings.Contains(e.output(t, stubborn), "got-term") {
		t.Errorf("the container never saw SIGTERM")
	}

	// A created container that never started stops (and goes) too.
	created, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: e.config("never-started", "sleep", "1000"), SandboxConfig: e.podCfg})
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := e.d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: created.ContainerId, Timeout: 10}); err != nil {
		t.Errorf("stop a created container: %v", err)
	}
	if st := e.status(t, created.ContainerId); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || time.Since(start) > 5*time.Second {
		t.Errorf("created container after stop: %v after %v", st.State, time.Since(start))
	}
	if _, err := e.d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: created.ContainerId}); err != nil {
		t.Errorf("remove the stopped created container: %v", err)
	}

	// The image's StopSignal (SIGUSR1) is what the container gets.
	cfg := e.config("usr1", "sh", "-c", `trap "echo got-usr1; exit 0" USR1; echo ready; while true; do sleep 0.1; done`)
	cfg.Image.Image = e.images["busybox:ep"]
	usr1 := e.run(t, cfg)
	waitLog(t, e, usr1, "ready")
	if _, err := e.d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: usr1, Timeout: 10}); err != nil {
		t.Fatal(err)
	}
	if st := e.status(t, usr1); st.ExitCode != 0 || st.Reason != "Completed" || !strings.Contains(e.output(t, usr1), "got-usr1") {
		t.Errorf("image stop signal: exit %d reason %s output %q", st.ExitCode, st.Reason, e.output(t, usr1))
	}
}

func waitLog(t *testing.T, e *containerEnv, id, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(e.output(t, id), want) {
		if time.Now().After(deadline) {
			t.Fatalf("container %s never logged %q: %q", id, want, e.output(t, id))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
	}
	return n
}

func TestContainerLogRotationReopenAndSizeMax(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnvWith(t, containerEnvOptions{ConfigTOML: "[containers]\nlog_size_max = \"16Ki\"\n"})
	ctx := harness.Ctx(t)
	id := e.run(t, e.config("ticker", "sh", "-c", "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.05; done"))
	waitLog(t, e, id, "tick-3")
	logPath := e.status(t, id).LogPath
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: id}); err != nil {
		t.Fatalf("ReopenContainerLog: %v", err)
	}
	old := countLines(t, rotated)
	time.Sleep(time.Second)
	if n := countLines(t, rotated); n != old {
		t.Errorf("the rotated file still grows: %d -> %d lines", old, n)
	}
	if n := countLines(t, logPath); n < 5 {
		t.Errorf("the new log has %d lines after a second", n)
	}
	// The bound: a flood stays within log_size_max (conmon truncates).
	flood := e.run(t, e.config("flood", "sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo flood-line-$i; i=$((i+1)); done"))
	e.waitExited(t, flood)
	st, err := os.Stat(e.status(t, flood).LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 16<<10+1024 {
		t.Errorf("log of %d bytes with log_size_max 16Ki", st.Size())
	}
	if _, err := e.d.Runtime.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: flood}); err == nil {
		t.Errorf("ReopenContainerLog of an exited container succeeded")
	}
}

func TestContainerKill9RestartRecoversRunningAndExited(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	ticker := e.run(t, e.config("ticker", "sh", "-c", "while [ ! -e /tmp/stop ]; do echo tick; sleep 0.1; done; exit 3"))
	quitter := e.run(t, e.config("quitter", "sh", "-c", "echo up; sleep 2; exit 5"))
	waitLog(t, e, ticker, "tick")
	waitLog(t, e, quitter, "up")
	logPath := e.status(t, ticker).LogPath
	e.d.Kill9()
	killedAt := time.Now()
	before := countLines(t, logPath)
	time.Sleep(3 * time.Second)
	if after := countLines(t, logPath); after <= before+5 {
		t.Errorf("the container stopped logging while floe was down: %d -> %d lines", before, after)
	}
	restartAt := time.Now()
	e.d.Start()
	st := e.status(t, quitter)
	finished := time.Unix(0, st.FinishedAt)
	if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 5 || st.Reason != "Error" ||
		finished.Before(killedAt) || finished.After(restartAt) {
		t.Errorf("container that exited while floe was down: %v exit %d reason %s finished %v (down %v..%v)",
			st.State, st.ExitCode, st.Reason, finished, killedAt, restartAt)
	}
	if st := e.status(t, ticker); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("running container after restart: %v", st.State)
	}
	e.exec(t, ticker, "touch", "/tmp/stop")
	if st := e.waitExited(t, ticker); st.ExitCode != 3 {
		t.Errorf("exit after restart: %d", st.ExitCode)
	}
}

// slowRuntime is a runc wrapper whose create (or other subcommand) takes
// seconds more, so a CreateContainer outlives its caller's deadline.
func slowRuntime(t *testing.T, seconds int, subcommand ...string) string {
	t.Helper()
	sub := "create"
	if len(subcommand) > 0 {
		sub = subcommand[0]
	}
	path := filepath.Join(t.TempDir(), "slowrunc")
	script := fmt.Sprintf("#!/bin/sh\ncase \" $* \" in *\" %s \"*) sleep %d;; esac\nexec /usr/sbin/runc \"$@\"\n", sub, seconds)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCreateContainerRetryAfterDeadlineGetsTheSameContainer(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnvWith(t, containerEnvOptions{ConfigTOML: fmt.Sprintf("[runtimes.runc]\nruntime_path = %q\n", slowRuntime(t, 3))})
	create := func(ctx context.Context, name string) (string, error) {
		resp, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: e.config(name, "sleep", "1000"), SandboxConfig: e.podCfg})
		return resp.GetContainerId(), err
	}
	short := func(name string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := create(ctx, name); err == nil {
			t.Fatalf("%s: creation with a 3s runtime finished within 1s", name)
		}
	}
	// Retry while the creation still runs: it waits and gets the container.
	short("during")
	during, err := create(harness.Ctx(t), "during")
	if err != nil {
		t.Fatalf("retry during creation: %v", err)
	}
	// Retry after it finished: the unclaimed container is handed over.
	short("after")
	time.Sleep(4 * time.Second)
	if l, _ := e.d.Runtime.ListContainers(harness.Ctx(t), &runtimeapi.ListContainersRequest{}); len(l.GetContainers()) != 1 {
		t.Errorf("an unclaimed container is listed: %v", l.GetContainers())
	}
	after, err := create(harness.Ctx(t), "after")
	if err != nil {
		t.Fatalf("retry after creation: %v", err)
	}
	if l, _ := e.d.Runtime.ListContainers(harness.Ctx(t), &runtimeapi.ListContainersRequest{}); len(l.GetContainers()) != 2 || during == after {
		t.Errorf("containers after the retries: %v", l.GetContainers())
	}
	if _, err := create(harness.Ctx(t), "after"); err == nil || !strings.Contains(err.Error(), after) {
		t.Errorf("a duplicate after the claim: %v", err)
	}
	for _, id := range []string{during, after} {
		if _, err := e.d.Runtime.StartContainer(harness.Ctx(t), &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
			t.Errorf("start %s: %v", id, err)
		}
	}
}

// goneOrZombie waits up to limit for pid to exit; a zombie waiting for the
// host's init to reap it has exited.
func goneOrZombie(pid int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		if i := strings.LastIndexByte(string(data), ')'); i > 0 && i+2 < len(data) && data[i+2] == 'Z' {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestKill9DuringCreateContainerIsUndoneOnRestart(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnvWith(t, containerEnvOptions{ConfigTOML: fmt.Sprintf("[runtimes.runc]\nruntime_path = %q\n", slowRuntime(t, 2))})
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: e.config("interrupted", "sleep", "1000"), SandboxConfig: e.podCfg})
	if err == nil {
		t.Fatal("creation with a 2s runtime finished within 1.5s")
	}
	e.d.Kill9()
	e.d.Start()
	if !strings.Contains(e.d.Log(), "undoing a container whose creation was interrupted") {
		t.Errorf("restart did not undo the interrupted creation")
	}
	// Whatever conmon and runc were doing when floe died, none of it
	// stays once the slow create has had time to finish.
	time.Sleep(3 * time.Second)
	if left := conmonsUnder(e.d.RunDir); len(left) > 0 {
		t.Errorf("conmon of the undone container still runs: %v", left)
	}
	if l, _ := e.d.Runtime.ListContainers(harness.Ctx(t), &runtimeapi.ListContainersRequest{}); len(l.GetContainers()) != 0 {
		t.Errorf("containers after the undo: %v", l.GetContainers())
	}
	// The same request now succeeds.
	e.run(t, e.config("interrupted", "sleep", "1000"))
}

// conmonsUnder lists conmon processes whose command line mentions dir.
func conmonsUnder(dir string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		cmd, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(filepath.Base(strings.Split(string(cmd), "\x00")[0]), "conmon") && strings.Contains(string(cmd), dir) {
			out = append(out, ent.Name())
		}
	}
	return out
}

func TestKill9DuringStartContainerFindsItRunning(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnvWith(t, containerEnvOptions{ConfigTOML: fmt.Sprintf("[runtimes.runc]\nruntime_path = %q\n", slowRuntime(t, 2, "start"))})
	created, err := e.d.Runtime.CreateContainer(harness.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID,
		Config: e.config("starting", "sh", "-c", "while [ ! -e /tmp/stop ]; do sleep 0.1; done; exit 4"), SandboxConfig: e.podCfg})
	if err != nil {
		t.Fatal(err)
	}
	id := created.ContainerId
	go e.d.Runtime.StartContainer(context.Background(), &runtimeapi.StartContainerRequest{ContainerId: id})
	time.Sleep(time.Second)
	// floe dies while `runc start` waits in the wrapper; runc still starts
	// the container.
	e.d.Kill9()
	time.Sleep(2 * time.Second)
	e.d.Start()
	if st := e.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING || st.StartedAt == 0 {
		t.Fatalf("container started while floe was down: %v", st)
	}
	e.exec(t, id, "touch", "/tmp/stop")
	if st := e.waitExited(t, id); st.ExitCode != 4 {
		t.Errorf("exit of the recovered container: %d", st.ExitCode)
	}
}

// A node reboot takes a created container's runtime state, conmon and
// bundle (all under /run) with it. Simulated here by killing its conmon
// and deleting it from runc while floe is down: the restarted floe records
// it exited with the reason instead of keeping a container StartContainer
// can never start, and removing it leaves nothing.
func TestCreatedContainerGoneFromRuntimeIsExitedAfterRestart(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	ctx := harness.Ctx(t)
	resp, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: e.config("never-started", "sleep", "1000"), SandboxConfig: e.podCfg})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.ContainerId
	out, err := floeCLI(t, e.d, "inspect", "container", id, "--json")
	if err != nil {
		t.Fatalf("floe inspect container: %v\n%s", err, out)
	}
	var c inspect.Container
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.ConmonPid == 0 {
		t.Fatalf("inspect: %v %+v", err, c)
	}
	e.d.Kill9()
	if err := syscall.Kill(c.ConmonPid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the container's conmon %d: %v", c.ConmonPid, err)
	}
	if out, err := exec.Command("runc", "delete", "--force", id).CombinedOutput(); err != nil {
		t.Fatalf("runc delete --force %s: %v %s", id, err, out)
	}
	e.d.Start()
	st := e.status(t, id)
	if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || !strings.Contains(st.Message, "runtime no longer has it") {
		t.Errorf("created container gone from runc, after a restart: %v reason %q message %q", st.State, st.Reason, st.Message)
	}
	if _, err := e.d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("StartContainer of it: %v, want FailedPrecondition", err)
	}
	if _, err := e.d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Errorf("RemoveContainer: %v", err)
	}
}
