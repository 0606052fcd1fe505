package podinit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/floe-cri/floe/internal/ocispec"
	"github.com/floe-cri/floe/internal/procstat"
	"github.com/floe-cri/floe/test/harness"
	"github.com/floe-cri/floe/test/needs"
	"github.com/floe-cri/floe/test/ocitest"
)

// The test binary stands in for floe: re-executed with the helper
// arguments it becomes the launcher or the init.
func TestMain(m *testing.M) {
	if IsHelper(os.Args) {
		Main()
	}
	// Take turns with other packages running real containers, whose
	// host-wide leak checks would see ours.
	unlock := harness.MustLockHost()
	code := m.Run()
	if code == 0 {
		if left := ocitest.LeftoverCgroups(); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "leaked cgroups: %v\n", left)
			code = 1
		}
		if left := ocitest.RuncContainers("podinit-test-"); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "leaked runc containers: %v\n", left)
			code = 1
		}
	}
	unlock()
	os.Exit(code)
}

// inits are the init programs every behaviour test runs against: this
// package's Go init (the test binary re-executed) and the static C one,
// cmd/floe-pod-reaper, built with the flags `make build` uses.
func inits(t *testing.T) map[string]Programs {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	reaper := filepath.Join(t.TempDir(), "floe-pod-reaper")
	if err := harness.BuildPodReaper(reaper); err != nil {
		t.Fatal(err)
	}
	return map[string]Programs{"go": {}, "c": {Init: reaper}}
}

func startInit(t *testing.T, p Programs) *Init {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in, err := Start(ctx, Options{Programs: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := in.Stop(ctx, 5*time.Second); err != nil {
			t.Error(err)
		}
	})
	return in
}

func TestInitIsPID1AndReapsOrphans(t *testing.T) {
	for _, p := range []string{"/usr/sbin/runc", ocitest.BusyboxPath} {
		needs.File(t, p, p)
	}
	for name, p := range inits(t) {
		t.Run(name, func(t *testing.T) { testPID1AndReaping(t, p) })
	}
}

func testPID1AndReaping(t *testing.T, p Programs) {
	in := startInit(t, p)
	if !in.Alive() {
		t.Fatal("init not running")
	}
	ns, err := NamespaceOf(in.Pid)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := NamespaceOf(os.Getpid())
	if ns == self {
		t.Fatal("init shares the test's PID namespace")
	}
	// Confined: nobody, no capabilities, an empty root of its own.
	status := readFile(fmt.Sprintf("/proc/%d/status", in.Pid))
	if !strings.Contains(status, "\nUid:\t65534\t65534\t65534\t65534\n") || !strings.Contains(status, "\nGid:\t65534\t65534\t65534\t65534\n") || !strings.Contains(status, "\nGroups:\t \n") || !strings.Contains(status, "\nCapEff:\t0000000000000000\n") || !strings.Contains(status, "\nCapPrm:\t0000000000000000\n") {
		t.Errorf("init not confined:\n%s", status)
	}
	if entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/root/", in.Pid)); err != nil || len(entries) != 0 {
		t.Errorf("init root is not empty: %v %v", len(entries), err)
	}
	// The init is not the test's child: it must outlive the daemon.
	if ppid := parentOf(t, in.Pid); ppid == os.Getpid() {
		t.Errorf("init's parent is the test process")
	}

	id := "podinit-test-" + strconv.Itoa(os.Getpid())
	bundle := ocitest.Bundle(t, id, func(c *ocispec.Container) {
		c.Namespaces.PIDPath = in.NsPath()
		// Print PID 1's command line, orphan a short sleep (its parent
		// subshell exits at once, so it is reparented to PID 1), then wait.
		c.Command = []string{"sh", "-c", `tr '\0' ' ' < /proc/1/cmdline; echo; (sleep 0.3 &); echo orphaned; exec sleep 60`}
	})
	out := filepath.Join(t.TempDir(), "out")
	outFile, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := exec.CommandContext(ctx, "runc", "run", "--detach", "--bundle", bundle, id)
	run.Stdout, run.Stderr = outFile, outFile
	if err := run.Run(); err != nil {
		t.Fatalf("runc run: %v: %s", err, readFile(out))
	}
	waitFor(t, func() bool { return strings.Contains(readFile(out), "orphaned") }, "container output")
	if first := strings.SplitN(readFile(out), "\n", 2)[0]; !strings.Contains(first, HelperArg) {
		t.Errorf("PID 1 in the container is %q, want the pod init", first)
	}

	// The orphan exits after 0.3s; without reaping it would stay a zombie
	// child of the init. Eventually the namespace holds the init and the
	// container's sleep only, and no zombie.
	var procs map[int]string
	waitFor(t, func() bool {
		procs, err = ProcessesIn(ns)
		return err == nil && len(procs) == 2
	}, "orphan reaped")
	for pid, state := range procs {
		if state == "Z" {
			t.Errorf("zombie %d in the pod", pid)
		}
	}

	// Stopping the init ends every process of the namespace.
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	if err := in.Stop(sctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if in.Alive() {
		t.Error("init alive after Stop")
	}
	// Killed processes whose parent is the host's init may stay zombies
	// until that init gets round to them; none may still run.
	waitFor(t, func() bool {
		p, _ := ProcessesIn(ns)
		for _, state := range p {
			if state != "Z" && state != "X" {
				return false
			}
		}
		return true
	}, "pod processes gone")
}

func TestStopIsIdempotentAndPidReuseSafe(t *testing.T) {
	for name, p := range inits(t) {
		t.Run(name, func(t *testing.T) { testStop(t, p) })
	}
}

func testStop(t *testing.T, p Programs) {
	in := startInit(t, p)
	ctx := context.Background()
	// Stopped right after it started, the init still obeys SIGTERM (its
	// handlers are in place before Start returns), so no SIGKILL timeout.
	start := time.Now()
	if err := in.Stop(ctx, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("stop took %v: SIGTERM was lost", took)
	}
	if err := in.Stop(ctx, time.Second); err != nil {
		t.Errorf("second stop: %v", err)
	}
	// A record whose start time does not match is not the init any more.
	other := &Init{Pid: os.Getpid(), StartTime: 1}
	if other.Alive() {
		t.Error("a different process with the same pid counts as alive")
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func readFile(p string) string {
	data, _ := os.ReadFile(p)
	return string(data)
}

func parentOf(t *testing.T, pid int) int {
	st, err := procstat.Read(pid)
	if err != nil {
		t.Fatal(err)
	}
	return st.PPid
}

// The init can be placed in the pod's cgroup before it reports ready.
func TestInitJoinsCgroups(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	cg := ocitest.CgroupRoot + "/podinit-cg-" + strconv.Itoa(os.Getpid())
	dir := filepath.Join("/sys/fs/cgroup/pids", cg)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("no pids cgroup: %v", err)
	}
	t.Cleanup(func() { ocitest.RemoveCgroup(cg) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in, err := Start(ctx, Options{CgroupProcs: []string{filepath.Join(dir, "cgroup.procs")}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Stop(ctx, 5*time.Second)
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", in.Pid))
	if err != nil || !strings.Contains(string(data), ":pids:"+cg+"\n") {
		t.Errorf("init cgroups: %s %v", data, err)
	}
	if err := in.Stop(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, Options{CgroupProcs: []string{"/nonexistent/cgroup.procs"}}); err == nil {
		t.Error("start with a bad cgroup succeeded")
	}
}

// TestSeparateInitProgram: with InitExe the launcher takes the program from
// its first argument (were it read as a cgroup.procs path, the launch would
// fail) and runs it as the init; here it is the test binary again, by a
// symlink.
func TestSeparateInitProgram(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "other-init")
	if err := os.Symlink(self, link); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in, err := Start(ctx, Options{Programs: Programs{Init: link}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Stop(ctx, 5*time.Second)
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", in.Pid))
	// The init runs on an empty root, so its exe may read as unreachable;
	// its command line is what ps shows either way.
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", in.Pid))
	if !strings.HasPrefix(string(cmdline), "floe-pod-init\x00"+HelperArg) {
		t.Errorf("init command line %q", cmdline)
	}
	if err == nil && filepath.Base(exe) != filepath.Base(self) {
		t.Errorf("init runs %s, want %s", exe, self)
	}
	if !in.Alive() {
		t.Error("init not alive")
	}
}

// TestFindByPodID: an init the daemon never recorded (it died between the
// launch and the write) is found by the pod id on its command line.
func TestFindByPodID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in, err := Start(ctx, Options{PodID: "pod-find-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Stop(ctx, 5*time.Second)
	found, err := Find("pod-find-test")
	if err != nil || len(found) != 1 || *found[0] != *in {
		t.Fatalf("Find = %v, %v; want [%+v]", found, err, in)
	}
	if other, _ := Find("pod-find"); len(other) != 0 {
		t.Errorf("a prefix of the id matched: %v", other)
	}
	if err := found[0].Stop(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if again, _ := Find("pod-find-test"); len(again) != 0 {
		t.Errorf("stopped init still found: %v", again)
	}
}
