package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floe-cri/floe/internal/ocispec"
	"github.com/floe-cri/floe/test/harness"
	"github.com/floe-cri/floe/test/needs"
	"github.com/floe-cri/floe/test/ocitest"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// testDirPrefix names every directory the tests give conmon, so the leak
// check can tell this package's monitors from anyone else's.
const testDirPrefix = "floe-monitor-test-"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		childDaemon()
	}
	// Take turns with other packages running real containers, whose
	// host-wide leak checks would see ours.
	unlock := harness.MustLockHost()
	code := m.Run()
	if code == 0 {
		if leaked := conmonsWithArg(testDirPrefix); len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "leaked conmon processes: %v\n", leaked)
			code = 1
		}
		if left := ocitest.RuncContainers("-" + strconv.Itoa(os.Getpid())); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "leaked runc containers: %v\n", left)
			code = 1
		}
		if left := ocitest.LeftoverCgroups(); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "leaked cgroups: %v\n", left)
			code = 1
		}
	}
	unlock()
	os.Exit(code)
}

// conmonsWithArg lists live conmon pids whose command line mentions s.
func conmonsWithArg(s string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !bytes.HasPrefix(cmdline, []byte("conmon")) && !bytes.Contains(cmdline, []byte("/conmon\x00")) {
			continue
		}
		if bytes.Contains(cmdline, []byte(s)) && !isZombie(pid) {
			out = append(out, pid)
		}
	}
	return out
}

func requireTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, p := range []string{"/usr/bin/conmon", "/usr/sbin/runc", ocitest.BusyboxPath} {
		needs.File(t, p, p)
	}
}

type fixture struct {
	m       *Monitor
	exitDir string
	sockDir string
	logDir  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	requireTools(t)
	base, err := os.MkdirTemp("", testDirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	f := &fixture{exitDir: filepath.Join(base, "exits"), sockDir: filepath.Join(base, "socks"), logDir: filepath.Join(base, "logs")}
	f.m = f.newMonitor(t)
	return f
}

func (f *fixture) newMonitor(t *testing.T) *Monitor {
	t.Helper()
	m, err := New(Config{ExitDir: f.exitDir, SocketDir: f.sockDir, CommandTimeout: 20 * time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// create builds a bundle running argv (adjusted by mutate) and creates the
// container through conmon; cleanup deletes it.
func (f *fixture) create(t *testing.T, id string, argv []string, mutate func(*ocispec.Container)) *Container {
	t.Helper()
	bundle := ocitest.Bundle(t, id, func(c *ocispec.Container) {
		c.Command = argv
		if mutate != nil {
			mutate(c)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := f.m.Create(ctx, CreateOptions{ID: id, Bundle: bundle, LogPath: filepath.Join(f.logDir, id+".log"), Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := f.m.Delete(ctx, c); err != nil {
			t.Errorf("delete %s: %v", id, err)
		}
	})
	return c
}

func (f *fixture) run(t *testing.T, id string, argv []string, mutate func(*ocispec.Container)) (*Container, *Exit) {
	t.Helper()
	c := f.create(t, id, argv, mutate)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.m.Start(ctx, c); err != nil {
		t.Fatal(err)
	}
	e, err := f.m.Wait(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	return c, e
}

func readLogLines(t *testing.T, path string) []LogLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []LogLine
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if l == "" {
			continue
		}
		ll, err := ParseLogLine([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ll)
	}
	return out
}

func testID(t *testing.T) string {
	return strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())) + "-" + strconv.Itoa(os.Getpid())
}

func TestExitCodeLogsAndRuncList(t *testing.T) {
	f := newFixture(t)
	id := testID(t)
	c := f.create(t, id, []string{"sh", "-c", "echo out; printf partial; echo err >&2; exit 3"}, nil)
	// The default runc root is kept: plain `runc list` shows the container.
	lctx, lcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer lcancel()
	out, err := exec.CommandContext(lctx, "runc", "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), id) {
		t.Errorf("runc list does not show %s: %v\n%s", id, err, out)
	}
	st, pid, err := f.m.State(context.Background(), id)
	if err != nil || st != StatusCreated || pid != c.Pid {
		t.Errorf("state after create: %s %d %v (pid %d)", st, pid, err, c.Pid)
	}
	if c.ConmonPid <= 0 || c.MemoryCgroup == "" {
		t.Errorf("record: %+v", c)
	}
	before := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.m.Start(ctx, c); err != nil {
		t.Fatal(err)
	}
	e, err := f.m.Wait(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if e.Code != 3 || e.OOMKilled || e.Reason() != "Error" {
		t.Errorf("exit %+v reason %s", e, e.Reason())
	}
	if e.FinishedAt.Before(before.Add(-time.Second)) || e.FinishedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("finished at %v, started at %v", e.FinishedAt, before)
	}
	lines := readLogLines(t, c.LogPath)
	var got []string
	for _, l := range lines {
		tag := "F"
		if l.Partial {
			tag = "P"
		}
		got = append(got, l.Stream+" "+tag+" "+string(l.Content))
	}
	want := map[string]bool{"stdout F out": true, "stdout P partial": true, "stderr F err": true}
	if len(got) != 3 {
		t.Fatalf("log lines %q", got)
	}
	for _, g := range got {
		if !want[g] {
			t.Errorf("unexpected log line %q (all: %q)", g, got)
		}
	}
	if st, _, err := f.m.State(context.Background(), id); err != nil || st != StatusStopped {
		t.Errorf("state after exit: %s %v", st, err)
	}
}

func TestStopTimeoutKillsProcessIgnoringSIGTERM(t *testing.T) {
	f := newFixture(t)
	id := testID(t)
	c := f.create(t, id, []string{"sh", "-c", `trap "" TERM; echo ready; while :; do sleep 1; done`}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := f.m.Start(ctx, c); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, c.LogPath, "ready")
	start := time.Now()
	e, err := f.m.Stop(ctx, c, syscall.SIGTERM, 2*time.Second)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if e.Code != 137 || took < 2*time.Second || took > 2*time.Second+killGrace {
		t.Errorf("exit %+v after %v; want 137 after the 2s timeout", e, took)
	}
	t.Logf("stop of a SIGTERM-ignoring container with a 2s timeout took %v", took)

	// A container that obeys SIGTERM stops well within its timeout.
	id2 := id + "-obeys"
	c2 := f.create(t, id2, []string{"sh", "-c", `trap "exit 0" TERM; echo ready; while :; do sleep 0.1; done`}, nil)
	if err := f.m.Start(ctx, c2); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, c2.LogPath, "ready")
	start = time.Now()
	e, err = f.m.Stop(ctx, c2, syscall.SIGTERM, 20*time.Second)
	if err != nil || e.Code != 0 || time.Since(start) > 5*time.Second {
		t.Errorf("obedient stop: %+v %v after %v", e, err, time.Since(start))
	}
}

func waitForLog(t *testing.T, path, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(path); err == nil && strings.Contains(string(data), s) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	data, _ := os.ReadFile(path)
	t.Fatalf("%q never appeared in %s: %q", s, path, data)
}

func TestOOMKilled(t *testing.T) {
	f := newFixture(t)
	c, e := f.run(t, testID(t), []string{"sh", "-c", "echo start; tail /dev/zero"}, func(c *ocispec.Container) {
		c.Resources.MemoryLimit = 16 << 20
	})
	// Both sources agree: the cgroup's OOM-kill counter and conmon's marker.
	if !oomKilled(c.MemoryCgroup) || !conmonSawOOM(c.Bundle) {
		t.Errorf("cgroup counter %v, conmon marker %v", oomKilled(c.MemoryCgroup), conmonSawOOM(c.Bundle))
	}
	if !e.OOMKilled || e.Reason() != "OOMKilled" || e.Code != 137 {
		t.Errorf("exit %+v reason %s", e, e.Reason())
	}
}

func capEff(t *testing.T, logPath string) uint64 {
	t.Helper()
	for _, l := range readLogLines(t, logPath) {
		if v, ok := strings.CutPrefix(string(l.Content), "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no CapEff in %s", logPath)
	return 0
}

func capMask(t *testing.T, names []string) uint64 {
	var m uint64
	all := ocispec.AllCapabilities()
	for _, n := range names {
		found := false
		for i, c := range all {
			if c == n {
				m |= 1 << uint(i)
				found = true
			}
		}
		if !found {
			t.Fatalf("unknown cap %s", n)
		}
	}
	return m
}

func TestCapabilitiesInContainer(t *testing.T) {
	f := newFixture(t)
	bounding, err := ocispec.BoundingSet()
	if err != nil {
		t.Fatal(err)
	}
	boundMask := capMask(t, bounding)
	for _, tc := range []struct {
		name string
		set  func(*ocispec.Container)
		want uint64
	}{
		{"default", func(*ocispec.Container) {}, capMask(t, ocispec.DefaultCapabilities) & boundMask},
		{"add", func(c *ocispec.Container) { c.Capabilities.Add = []string{"NET_ADMIN", "SYS_RESOURCE"} },
			capMask(t, append([]string{"CAP_NET_ADMIN", "CAP_SYS_RESOURCE"}, ocispec.DefaultCapabilities...)) & boundMask},
		{"drop", func(c *ocispec.Container) {
			c.Capabilities.Drop = []string{"ALL"}
			c.Capabilities.Add = []string{"CHOWN"}
		}, capMask(t, []string{"CAP_CHOWN"})},
		{"privileged", func(c *ocispec.Container) { c.Privileged = true }, boundMask},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, e := f.run(t, testID(t), []string{"cat", "/proc/1/status"}, tc.set)
			if e.Code != 0 {
				t.Fatalf("exit %+v: %s", e, mustRead(c.LogPath))
			}
			if got := capEff(t, c.LogPath); got != tc.want {
				t.Errorf("CapEff %016x, want %016x", got, tc.want)
			}
		})
	}
}

func mustRead(p string) string {
	data, _ := os.ReadFile(p)
	return string(data)
}

func TestSeccompDefaultBlocksUnshare(t *testing.T) {
	f := newFixture(t)
	argv := []string{"unshare", "-U", "true"}
	c, e := f.run(t, testID(t)+"-default", argv, nil)
	if e.Code == 0 {
		t.Errorf("unshare succeeded under RuntimeDefault seccomp: %s", mustRead(c.LogPath))
	}
	c, e = f.run(t, testID(t)+"-unconfined", argv, func(c *ocispec.Container) { c.Seccomp = ocispec.Seccomp{Kind: ocispec.SeccompUnconfined} })
	if e.Code != 0 {
		t.Errorf("unshare failed unconfined: exit %d: %s", e.Code, mustRead(c.LogPath))
	}
}

func TestResourcesSysctlAndOOMScoreAdj(t *testing.T) {
	f := newFixture(t)
	id := testID(t)
	c := f.create(t, id, []string{"sh", "-c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; cat /proc/self/oom_score_adj; echo ready; sleep 60"}, func(c *ocispec.Container) {
		c.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "100"}
		c.OOMScoreAdj = -997 // what the kubelet sends for Guaranteed pods
		c.Resources = ocispec.Resources{CPUShares: 256, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimit: 64 << 20, PidsLimit: 42}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.m.Start(ctx, c); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, c.LogPath, "ready")
	lines := readLogLines(t, c.LogPath)
	if string(lines[0].Content) != "100" {
		t.Errorf("sysctl in container: %q", lines[0].Content)
	}
	min, _ := ocispec.MinOOMScoreAdj()
	if want := strconv.Itoa(max(-997, min)); string(lines[1].Content) != want {
		t.Errorf("oom_score_adj in container %q, want %s", lines[1].Content, want)
	}
	cg := ocitest.CgroupRoot + "/" + id
	for _, chk := range []struct{ ctrl, file, want string }{
		{"cpu", "cpu.shares", "256"}, {"cpu", "cpu.cfs_quota_us", "50000"}, {"cpu", "cpu.cfs_period_us", "100000"},
		{"memory", "memory.limit_in_bytes", strconv.Itoa(64 << 20)}, {"pids", "pids.max", "42"},
	} {
		if got := ocitest.CgroupFile(t, chk.ctrl, cg, chk.file); got != chk.want {
			t.Errorf("%s/%s = %s, want %s", chk.ctrl, chk.file, got, chk.want)
		}
	}
	// UpdateContainerResources: new limits reach the cgroup.
	pids, quota := int64(77), int64(20000)
	if err := f.m.Update(ctx, c, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &pids}, CPU: &specs.LinuxCPU{Quota: &quota}}); err != nil {
		t.Fatal(err)
	}
	if got := ocitest.CgroupFile(t, "pids", cg, "pids.max"); got != "77" {
		t.Errorf("pids.max after update = %s", got)
	}
	if got := ocitest.CgroupFile(t, "cpu", cg, "cpu.cfs_quota_us"); got != "20000" {
		t.Errorf("cfs_quota_us after update = %s", got)
	}
	e, err := f.m.Stop(ctx, c, syscall.SIGKILL, 0)
	if err != nil || e.Code != 137 {
		t.Errorf("kill: %+v %v", e, err)
	}
}

func TestExecSync(t *testing.T) {
	f := newFixture(t)
	c := f.create(t, testID(t), []string{"sleep", "60"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := f.m.Start(ctx, c); err != nil {
		t.Fatal(err)
	}
	proc := &specs.Process{Args: []string{"sh", "-c", "echo out; echo err >&2; printf tail; exit 7"}, Cwd: "/", Env: []string{"PATH=/bin:/usr/bin"}}
	res, err := f.m.ExecSync(ctx, c, proc, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 7 || string(res.Stdout) != "out\ntail" || string(res.Stderr) != "err\n" {
		t.Errorf("exec result: code %d stdout %q stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}
	start := time.Now()
	proc.Args = []string{"sh", "-c", "echo before; sleep 30"}
	res, err = f.m.ExecSync(ctx, c, proc, time.Second)
	if !errors.Is(err, ErrExecTimeout) || time.Since(start) > 10*time.Second {
		t.Errorf("timed-out exec: %v after %v", err, time.Since(start))
	}
	if res == nil || string(res.Stdout) != "before\n" {
		t.Errorf("output before the timeout: %+v", res)
	}
	// The container itself is untouched by its execs.
	if st, _, err := f.m.State(ctx, c.ID); err != nil || st != StatusRunning {
		t.Errorf("container after execs: %s %v", st, err)
	}
	if e, _ := f.m.ExitStatus(c); e != nil {
		t.Errorf("exec wrote an exit for the container: %+v", e)
	}
	if _, err := f.m.Stop(ctx, c, syscall.SIGKILL, 0); err != nil {
		t.Fatal(err)
	}
}

func TestReopenLog(t *testing.T) {
	f := newFixture(t)
	c := f.create(t, testID(t), []string{"sh", "-c", "i=0; while :; do echo line$i; i=$((i+1)); sleep 0.1; done"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := f.m.Start(ctx, c); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, c.LogPath, "line2")
	rotated := c.LogPath + ".1"
	if err := os.Rename(c.LogPath, rotated); err != nil {
		t.Fatal(err)
	}
	if err := f.m.ReopenLog(ctx, c); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, c.LogPath, "line")
	if n := len(readLogLines(t, rotated)); n < 3 {
		t.Errorf("rotated log has %d lines", n)
	}
	if _, err := f.m.Stop(ctx, c, syscall.SIGKILL, 0); err != nil {
		t.Fatal(err)
	}
	// Once conmon is gone there is nobody to reopen the log.
	waitPidGone(ctx, c.ConmonPid, c.Bundle, killGrace)
	if err := f.m.ReopenLog(ctx, c); err == nil {
		t.Error("reopen after exit succeeded")
	}
}

// The container and its conmon outlive the Monitor that started them, and
// a later Monitor picks its exit up from the exit file.
func TestContainerOutlivesMonitor(t *testing.T) {
	f := newFixture(t)
	c := f.create(t, testID(t), []string{"sh", "-c", waitForGo + "exit 5"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.m.Start(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Close(); err != nil {
		t.Fatal(err)
	}
	if ppid := parentOf(c.ConmonPid); ppid == os.Getpid() {
		t.Errorf("conmon %d is a child of the test process", c.ConmonPid)
	}
	m2 := f.newMonitor(t)
	f.m = m2 // cleanup deletes through the live monitor
	if st, _, err := m2.State(ctx, c.ID); err != nil || st != StatusRunning {
		t.Errorf("state seen by a new monitor: %s %v", st, err)
	}
	letGo(t, c.Bundle)
	e, err := m2.Wait(ctx, c)
	if err != nil || e.Code != 5 {
		t.Errorf("exit seen by a new monitor: %+v %v", e, err)
	}
}

// childEnv makes the test binary play a short-lived daemon: it creates and
// starts one container through a Monitor, prints the record and exits.
const childEnv = "FLOE_MONITOR_TEST_CHILD"

func childDaemon() {
	var req struct {
		Config  Config
		Options CreateOptions
	}
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &req); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	req.Config.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := New(req.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := m.Create(ctx, req.Options)
	if err == nil {
		err = m.Start(ctx, c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(c)
	os.Exit(0) // no Close, no cleanup: as if the daemon died
}

// A container started by a daemon process that has exited keeps running,
// and the exit is picked up by the next daemon from the exit file.
func TestContainerOutlivesDaemonProcess(t *testing.T) {
	f := newFixture(t)
	id := testID(t)
	bundle := ocitest.Bundle(t, id, func(c *ocispec.Container) { c.Command = []string{"sh", "-c", waitForGo + "exit 9"} })
	req, _ := json.Marshal(map[string]any{
		"Config":  Config{ExitDir: f.exitDir, SocketDir: f.sockDir},
		"Options": CreateOptions{ID: id, Bundle: bundle, LogPath: filepath.Join(f.logDir, id+".log")},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+string(req))
	var stderr bytes.Buffer
	child.Stderr = &stderr
	out, err := child.Output()
	if err != nil {
		t.Fatalf("daemon child: %v: %s", err, stderr.String())
	}
	var c Container
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f.m.Delete(ctx, &c)
	})
	if st, _, err := f.m.State(ctx, id); err != nil || st != StatusRunning {
		t.Fatalf("container after its daemon exited: %s %v", st, err)
	}
	if isZombie(c.ConmonPid) {
		t.Fatalf("conmon %d died with its daemon", c.ConmonPid)
	}
	letGo(t, bundle)
	e, err := f.m.Wait(ctx, &c)
	if err != nil || e.Code != 9 {
		t.Errorf("exit picked up later: %+v %v", e, err)
	}
}

// waitForGo makes a container shell wait until the test creates /tmp/go in
// its rootfs (letGo), so the test decides when it exits.
const waitForGo = "while [ ! -e /tmp/go ]; do sleep 0.05; done; "

func letGo(t *testing.T, bundle string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(bundle, "rootfs", "tmp", "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func parentOf(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	i := bytes.LastIndexByte(data, ')')
	fields := strings.Fields(string(data[i+1:]))
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// A conmon killed behind our back is noticed: Wait does not hang.
func TestWaitNoticesLostMonitor(t *testing.T) {
	f := newFixture(t)
	old := fallbackRecheck
	fallbackRecheck = 50 * time.Millisecond
	t.Cleanup(func() { fallbackRecheck = old })
	c := f.create(t, testID(t), []string{"sleep", "60"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.m.Start(ctx, c); err != nil {
		t.Fatal(err)
	}
	// This conmon was started by this test, so the test may kill it.
	if err := syscall.Kill(c.ConmonPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, err := f.m.Wait(ctx, c)
	if !errors.Is(err, ErrMonitorLost) {
		t.Errorf("wait after conmon was killed: %v", err)
	}
}

func TestCreateFailureLeavesNothing(t *testing.T) {
	f := newFixture(t)
	id := testID(t)
	bundle := ocitest.Bundle(t, id, func(c *ocispec.Container) { c.Command = []string{"/no/such/binary"} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// runc create succeeds (exec happens at start); break the bundle
	// instead so create itself fails.
	os.RemoveAll(filepath.Join(bundle, "rootfs", "bin"))
	os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion":"1.0.2","root":{"path":"/nonexistent-floe-root"},"process":{"args":["x"],"cwd":"/"}}`), 0o600)
	_, err := f.m.Create(ctx, CreateOptions{ID: id, Bundle: bundle, LogPath: filepath.Join(f.logDir, id+".log")})
	if err == nil {
		t.Fatal("create of a broken bundle succeeded")
	}
	t.Logf("create error: %v", err)
	if _, _, err := f.m.State(ctx, id); err == nil {
		t.Error("runc still knows the failed container")
	}
	if pids := conmonsWithArg(bundle); len(pids) > 0 {
		t.Errorf("conmon left running: %v", pids)
	}
}

// An rshared mount of a private host mount works: the builder makes the
// host side shared, and a mount made on the host afterwards shows up in the
// running container.
func TestSharedMountPropagation(t *testing.T) {
	f := newFixture(t)
	host := t.TempDir()
	if err := unix.Mount("tmpfs", host, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(host, unix.MNT_DETACH) })
	if err := unix.Mount("", host, "", unix.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(host, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	c := f.create(t, testID(t), []string{"sh", "-c", waitForGo + "cat /shared/sub/hello"}, func(c *ocispec.Container) {
		c.Mounts = []ocispec.Mount{{ContainerPath: "/shared", HostPath: host, Propagation: ocispec.PropagationBidir}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.m.Start(ctx, c); err != nil {
		t.Fatal(err)
	}
	// Mounted on the host after the container started.
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(sub, "hello"), []byte("propagated\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	letGo(t, c.Bundle)
	e, err := f.m.Wait(ctx, c)
	if err != nil || e.Code != 0 || !strings.Contains(mustRead(c.LogPath), "propagated") {
		t.Errorf("exit %+v %v; log %q", e, err, mustRead(c.LogPath))
	}
}

// The user comes from the image's /etc/passwd and /etc/group, and the
// default masked and read-only paths are in force.
func TestUserAndMaskedPathsInContainer(t *testing.T) {
	f := newFixture(t)
	c, e := f.run(t, testID(t)+"-user", []string{"id"}, func(c *ocispec.Container) { c.Image.User = "app" })
	if out := mustRead(c.LogPath); e.Code != 0 || !strings.Contains(out, "uid=1000(app) gid=1000(app) groups=") || !strings.Contains(out, "44(video)") {
		t.Errorf("id as app: exit %d: %s", e.Code, out)
	}
	c, e = f.run(t, testID(t)+"-masked", []string{"sh", "-c", "wc -c < /proc/timer_list; echo x > /proc/sys/kernel/domainname || echo refused"}, nil)
	out := mustRead(c.LogPath)
	if e.Code != 0 || !strings.Contains(out, "stdout F 0\n") || !strings.Contains(out, "Read-only file system") || !strings.Contains(out, "refused") {
		t.Errorf("masked paths: exit %d: %s", e.Code, out)
	}
}

// conmon keeps the log within --log-size-max by truncating it.
func TestLogSizeMax(t *testing.T) {
	f := newFixture(t)
	m, err := New(Config{ExitDir: f.exitDir, SocketDir: f.sockDir, LogSizeMax: 4096, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	f.m = m
	c, e := f.run(t, testID(t), []string{"sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line-$i-0123456789012345678901234567890123456789; i=$((i+1)); done"}, nil)
	if e.Code != 0 {
		t.Fatalf("exit %+v", e)
	}
	st, err := os.Stat(c.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 4096+256 {
		t.Errorf("log is %d bytes, over the 4096-byte limit", st.Size())
	}
	if lines := readLogLines(t, c.LogPath); len(lines) == 0 || !strings.HasPrefix(string(lines[len(lines)-1].Content), "line-199-") {
		t.Errorf("log does not end with the last line: %d lines", len(lines))
	}
}

func TestReadLog(t *testing.T) {
	in := "2026-11-22T12:46:11.802686281+00:00 stdout F a\n" +
		"2026-11-22T12:46:11.802686281+00:00 stdout P b\n" +
		"2026-11-22T12:46:11.802686281+00:00 stdout F c\n" +
		"2026-11-22T12:46:11.802686281+00:00 stderr F \n"
	out, errb, err := ReadLog(strings.NewReader(in))
	if err != nil || string(out) != "a\nbc\n" || string(errb) != "\n" {
		t.Errorf("ReadLog: %q %q %v", out, errb, err)
	}
	if _, err := ParseLogLine([]byte("garbage")); err == nil {
		t.Error("garbage parsed")
	}
}

// BenchmarkCreateStartExit measures one short-lived container: conmon +
// runc create, runc start, and the exit picked up from the exit file.
func BenchmarkCreateStartExit(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	base, err := os.MkdirTemp("", testDirPrefix)
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(base)
	m, err := New(Config{ExitDir: filepath.Join(base, "exits"), SocketDir: filepath.Join(base, "socks"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	id := "bench-create-" + strconv.Itoa(os.Getpid())
	bundle := ocitest.Bundle(b, id, func(c *ocispec.Container) { c.Command = []string{"true"} })
	ctx := context.Background()
	var create, start, exit time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		c, err := m.Create(ctx, CreateOptions{ID: id, Bundle: bundle, LogPath: filepath.Join(base, "logs", id+".log")})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := m.Start(ctx, c); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := m.Wait(ctx, c); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		create, start, exit = create+t1.Sub(t0), start+t2.Sub(t1), exit+t3.Sub(t2)
		b.StopTimer()
		if err := m.Delete(ctx, c); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	n := time.Duration(b.N)
	b.ReportMetric(float64((create/n).Microseconds())/1000, "create-ms")
	b.ReportMetric(float64((start/n).Microseconds())/1000, "start-ms")
	b.ReportMetric(float64((exit/n).Microseconds())/1000, "exit-seen-ms")
}

// BenchmarkExecSync measures one ExecSync of `true` in a running container
// (exec conmon + runc exec + reading the output).
func BenchmarkExecSync(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	base, err := os.MkdirTemp("", testDirPrefix)
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(base)
	m, err := New(Config{ExitDir: filepath.Join(base, "exits"), SocketDir: filepath.Join(base, "socks"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	id := "bench-exec-" + strconv.Itoa(os.Getpid())
	bundle := ocitest.Bundle(b, id, func(c *ocispec.Container) { c.Command = []string{"sleep", "600"} })
	ctx := context.Background()
	c, err := m.Create(ctx, CreateOptions{ID: id, Bundle: bundle, LogPath: filepath.Join(base, "logs", id+".log")})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Delete(ctx, c)
	if err := m.Start(ctx, c); err != nil {
		b.Fatal(err)
	}
	proc := &specs.Process{Args: []string{"true"}, Cwd: "/", Env: []string{"PATH=/bin"}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := m.ExecSync(ctx, c, proc, 10*time.Second)
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("%+v %v", res, err)
		}
	}
}
