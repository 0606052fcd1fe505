package handlerprobe

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/floe-cri/floe/internal/cgroups"
	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/test/harness"
	"github.com/floe-cri/floe/test/needs"
)

func TestMain(m *testing.M) {
	// Probes create real containers: take turns with the other packages
	// whose host-wide leak checks would see them.
	unlock := harness.MustLockHost()
	code := m.Run()
	unlock()
	os.Exit(code)
}

func options(t *testing.T) Options {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("probing a runtime needs root")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Options{Dir: t.TempDir(), Binary: exe, CgroupRoot: "/sys/fs/cgroup"}
}

// probeLeaves fails the test for anything a probe left: files in its
// dir, processes naming it, cgroups, mounts, netns.
func probeLeaves(t *testing.T, o Options, f func()) {
	t.Helper()
	before := harness.Snapshot(t)
	f()
	before.AssertNoLeaks(t)
	if ents, _ := os.ReadDir(o.Dir); len(ents) > 0 {
		t.Errorf("probe dir not emptied: %v", ents)
	}
	if procs := processesNaming("floe-probe-"); len(procs) > 0 {
		t.Errorf("probe processes left: %v", procs)
	}
	var cgs []string
	filepath.WalkDir(o.CgroupRoot, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.Contains(path, "floe-probe-") {
			cgs = append(cgs, path)
		}
		return nil
	})
	if len(cgs) > 0 {
		t.Errorf("probe cgroups left: %v", cgs)
	}
}

func processesNaming(s string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, e.Name()+":"+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

func TestRuncUsableFastAndClean(t *testing.T) {
	o := options(t)
	var times []time.Duration
	probeLeaves(t, o, func() {
		for i := 0; i < 5; i++ {
			r := Probe(context.Background(), Target{Name: "runc", RuntimePath: "/usr/sbin/runc"}, o)
			if !r.Usable {
				t.Fatalf("runc reported unusable: %s", r.Error)
			}
			times = append(times, r.Duration)
		}
	})
	slices.Sort(times)
	t.Logf("runc probe durations (sorted): %v", times)
	// The median, so one slow round on a shared machine does not decide.
	if med := times[len(times)/2]; med > 100*time.Millisecond {
		t.Errorf("runc probe median %v, want < 100ms", med)
	}
}

func TestCrunOnHybridHostUnusableWithItsError(t *testing.T) {
	o := options(t)
	needs.Binary(t, "/usr/bin/crun")
	cg, err := cgroups.Detect(cgroups.HostPaths)
	if err != nil {
		t.Fatal(err)
	}
	var r Result
	probeLeaves(t, o, func() {
		r = Probe(context.Background(), Target{Name: "crun", RuntimePath: "/usr/bin/crun"}, o)
	})
	t.Logf("crun probe: usable=%v in %v: %s", r.Usable, r.Duration, r.Error)
	if cg.Mode != cgroups.ModeHybrid {
		t.Skipf("host cgroup mode %s: crun's hybrid refusal does not apply", cg.Mode)
	}
	if r.Usable {
		t.Fatal("crun reported usable on a hybrid cgroup host, where it refuses every container")
	}
	if !strings.Contains(r.Error, "crun create") || !strings.Contains(r.Error, "hybrid mode not supported") {
		t.Errorf("error should carry crun's own message: %q", r.Error)
	}
	// A refusal answers well before the probe's Timeout (15 s): usually in
	// ~30 ms, 260 ms seen at load 10, and once 2.0 s on a quiet host (crun's
	// create plus the forced delete). The bound tells a refusal from a
	// probe that waited for its timeout, not a fast machine from a slow one.
	if r.Duration > Timeout/3 {
		t.Errorf("crun probe took %v, want < %v (a refusal, not a timeout)", r.Duration, Timeout/3)
	}
}

func TestMissingBinaryUnusable(t *testing.T) {
	o := options(t)
	r := Probe(context.Background(), Target{Name: "nope", RuntimePath: "/nonexistent/runtime"}, o)
	if r.Usable || !strings.Contains(r.Error, "/nonexistent/runtime") {
		t.Fatalf("got %+v", r)
	}
}

func TestRunscProbe(t *testing.T) {
	o := options(t)
	needs.Binary(t, "/usr/bin/runsc")
	// gVisor's process must run inside its sandbox: a static binary.
	o.Binary = "/bin/busybox"
	var plain, hostNet Result
	probeLeaves(t, o, func() {
		plain = Probe(context.Background(), Target{Name: "runsc", RuntimePath: "/usr/bin/runsc", Start: true}, o)
		hostNet = Probe(context.Background(), Target{Name: "runsc", RuntimePath: "/usr/bin/runsc", RuntimeArgs: []string{"--network=host"}, Start: true}, o)
	})
	t.Logf("runsc probe (its own network stack): usable=%v in %v: %s", plain.Usable, plain.Duration, plain.Error)
	t.Logf("runsc probe (--network=host): usable=%v in %v: %s", hostNet.Usable, hostNet.Duration, hostNet.Error)
	// runsc 20221219 decides it is in the host's network namespace when
	// /proc/sys/net/core/rmem_default exists, which newer kernels have
	// in every namespace: it then refuses to start.
	if !plain.Usable && !strings.Contains(plain.Error, "runsc start") {
		t.Errorf("runsc's refusal should come from its start: %s", plain.Error)
	}
	if !hostNet.Usable {
		t.Errorf("runsc --network=host unusable: %s", hostNet.Error)
	}
}

// TestSweepRemovesAnInterruptedProbe leaves a created runc container, its
// cgroup and files behind as a floe killed mid-probe would, and requires
// the next probe round's sweep to remove them all.
func TestSweepRemovesAnInterruptedProbe(t *testing.T) {
	o := options(t)
	target := Target{Name: "runc", RuntimePath: "/usr/sbin/runc"}
	id := "floe-probe-runc-deadbeef"
	work := filepath.Join(o.Dir, id)
	// Should the test stop half-way, its container must not outlive it.
	t.Cleanup(func() {
		_ = remove(context.Background(), target.RuntimePath, work, globalArgs(target, work), id)
		_ = removeCgroups(o.CgroupRoot, id)
	})
	probeLeaves(t, o, func() {
		if err := writeBundle(filepath.Join(work, "bundle"), id, target, o); err != nil {
			t.Fatal(err)
		}
		if err := run(context.Background(), target.RuntimePath, work, "create",
			[]string{"--root", filepath.Join(work, "state"), "create", "--bundle", filepath.Join(work, "bundle"), id}); err != nil {
			t.Fatal(err)
		}
		// runc's init shows as "runc init"; the state root knows it.
		if out, err := exec.Command(target.RuntimePath, "--root", filepath.Join(work, "state"), "state", id).CombinedOutput(); err != nil || !strings.Contains(string(out), `"created"`) {
			t.Fatalf("the interrupted probe's container is not there (%v: %s); the test proves nothing", err, out)
		}
		reg := NewRegistry([]Target{target}, o, slog.New(slog.DiscardHandler))
		res := reg.ProbeAll(context.Background())
		if !res["runc"].Usable {
			t.Errorf("runc after sweep: %+v", res["runc"])
		}
		if err := reg.Check("runc"); err != nil {
			t.Error(err)
		}
	})
}

func TestRegistryCheckNamesHandlerAndReason(t *testing.T) {
	reg := NewRegistry(nil, Options{}, slog.New(slog.DiscardHandler))
	if err := reg.Check("crun"); err != nil {
		t.Fatalf("unprobed handler refused: %v", err)
	}
	reg.results["crun"] = Result{Handler: "crun", Error: "crun create: exit status 1: cgroups in hybrid mode not supported"}
	err := reg.Check("crun")
	if errdefs.KindOf(err) != errdefs.KindFailedPrecondition || !strings.Contains(err.Error(), `"crun"`) || !strings.Contains(err.Error(), "hybrid mode") {
		t.Fatalf("Check = %v", err)
	}
	var nilReg *Registry
	if nilReg.Check("x") != nil || nilReg.Results() != nil {
		t.Fatal("a nil registry must allow every handler")
	}
}

// TestRegistryProbesInTheBackground: Start returns at once; a slow
// handler is "probing" and counts usable for Check, Await waits for its
// result, and a quick handler's Await does not wait for the slow one.
func TestRegistryProbesInTheBackground(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	slow := Target{Name: "slow", RuntimePath: script("slow", `case " $* " in *" create "*) sleep 1; echo "slow runtime says no" >&2; exit 1;; esac`)}
	quick := Target{Name: "quick", RuntimePath: script("quick", "exit 0")}
	reg := NewRegistry([]Target{slow, quick}, Options{Dir: filepath.Join(dir, "probe"), Binary: "/bin/true"}, slog.New(slog.DiscardHandler))
	start := time.Now()
	done := reg.Start(context.Background())
	if time.Since(start) > 200*time.Millisecond {
		t.Errorf("Start took %v", time.Since(start))
	}
	if !reg.Probing("slow") || reg.Check("slow") != nil {
		t.Errorf("slow handler: probing %v, check %v; want probing and usable meanwhile", reg.Probing("slow"), reg.Check("slow"))
	}
	if err := reg.Await(context.Background(), "quick"); err != nil {
		t.Errorf("quick handler: %v", err)
	}
	if waited := time.Since(start); waited > 800*time.Millisecond {
		t.Errorf("the quick handler's Await waited %v, for the slow one", waited)
	}
	err := reg.Await(context.Background(), "slow")
	if errdefs.KindOf(err) != errdefs.KindFailedPrecondition || !strings.Contains(err.Error(), "slow runtime says no") {
		t.Errorf("slow handler after its probe: %v", err)
	}
	<-done
	if reg.Probing("slow") || reg.Probing("quick") {
		t.Error("still probing after the round")
	}
	reg.Wait()
}
