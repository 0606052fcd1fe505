package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/fixtures"
	"github.com/floe-cri/floe/test/harness"
)

// crashFailpoints are the steps of the create and remove paths where
// internal/failpoint can kill the daemon (failpoint.Hit in the sandbox and
// container cores). A name missing there is caught: the round waits for
// the daemon to kill itself and fails when it does not.
var crashFailpoints = []string{
	"sandbox.after-record",
	"sandbox.after-pod-files",
	"sandbox.after-pin",
	"sandbox.after-init-start",
	"sandbox.after-cni-add",
	"sandbox.before-ready-save",
	"sandbox.stop.after-cni-del",
	"sandbox.remove.before-record-delete",
	"container.after-record",
	"container.after-rootfs",
	"container.after-bundle",
	"container.after-conmon-create",
	"container.after-start",
	"container.remove.after-record-removing",
	"container.remove.before-record-delete",
}

const (
	crashWorkers   = 6
	crashMaxDelay  = 4 * time.Second
	crashEnvPoints = "CRASH_POINTS" // the long version: this many kill points
	crashEnvSeed   = "CRASH_SEED"   // replays the random delays of a run
	// Kinds of trouble the crash test reports besides the leak checks'.
	leakStoreMounted = "image store mounts after SIGTERM"
	crashCleanupErr  = "CRI cleanup failures (after 3 tries)"
	crashUnreached   = "failpoints never reached"
	crashPanics      = "daemon panics"
	crashLockHeld    = "state lock held after the kill"
)

type crashPoint struct {
	failpoint string        // a named step, or
	delay     time.Duration // a random moment after the load starts
}

func (p crashPoint) String() string {
	if p.failpoint != "" {
		return "at " + p.failpoint
	}
	return "after " + p.delay.String()
}

// crashPoints is every named failpoint once and five random moments, or
// with CRASH_POINTS=n, n points of which a third are named steps (in turn)
// and the rest random moments.
func crashPoints(t *testing.T, rng *rand.Rand) []crashPoint {
	random := func() crashPoint {
		return crashPoint{delay: 50*time.Millisecond + time.Duration(rng.Int64N(int64(crashMaxDelay)))}
	}
	var points []crashPoint
	if s := os.Getenv(crashEnvPoints); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q is not a positive number", crashEnvPoints, s)
		}
		for i := 0; i < n; i++ {
			if i%3 == 0 {
				points = append(points, crashPoint{failpoint: crashFailpoints[(i/3)%len(crashFailpoints)]})
			} else {
				points = append(points, random())
			}
		}
		return points
	}
	for _, fp := range crashFailpoints {
		points = append(points, crashPoint{failpoint: fp})
	}
	for i := 0; i < 5; i++ {
		points = append(points, random())
	}
	return points
}

// TestCrashAnywhereLeavesNothing kills floe (SIGKILL, at named steps and at
// random moments) while six clients create, exec in and remove pods with a
// container each, some pods sharing a PID namespace. After every kill floe
// is restarted and cleaned up the way the kubelet would (list, stop,
// remove everything); then nothing at all may be left: processes, netns,
// veths, IPAM reservations, mounts, cgroups, image store containers and
// layers, bundles, exit files, run dir entries, temp dirs, database
// records. The long version: make crash-test (CRASH_POINTS=200).
func TestCrashAnywhereLeavesNothing(t *testing.T) {
	harness.CheckLeaks(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(crashEnvSeed); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", crashEnvSeed, s, err)
		}
	}
	t.Logf("random delays from %s=%d", crashEnvSeed, seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))

	reg := fixtures.StartRegistry(t, fixtures.RegistryOptions{})
	reg.PushBusybox(t, "busybox:crash")
	d := harness.StartDaemon(t, harness.Options{RegistriesConf: reg.RegistriesConf(false)})
	image := reg.Ref("busybox:crash")
	if _, err := d.Images.PullImage(harness.Ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}}); err != nil {
		t.Fatalf("pull %s: %v", image, err)
	}
	// What exists now (the registry, the pulled image's layers) is the
	// baseline every round must return to.
	d.Stop()
	host := harness.Snapshot(t)
	base := d.State(t)
	rig := &crashRig{t: t, d: d, image: image, host: host, base: base}

	points := crashPoints(t, rng)
	totals := map[string]int{}
	named, rounds, started := 0, 0, time.Now()
	for i, p := range points {
		rounds++
		if p.failpoint != "" {
			named++
		}
		leaks := rig.round(i, p)
		for kind, items := range leaks {
			totals[kind] += len(items)
			t.Errorf("round %d (kill %s): %s: %s", i, p, kind, strings.Join(items, ", "))
		}
		if t.Failed() && os.Getenv(crashEnvPoints) == "" {
			break // the short version stops at the first failure, with its log
		}
	}
	kinds := []string{
		harness.LeakProcesses, harness.LeakNetns, harness.LeakVeths, harness.LeakIPAM, harness.LeakMounts,
		harness.LeakCgroups, harness.LeakTempDirs, harness.LeakStorageContainers, harness.LeakStorageLayers,
		harness.LeakLayerDirs, harness.LeakBundles, harness.LeakExitFiles, harness.LeakSocketDirs,
		harness.LeakPodDirs, harness.LeakRunDir, harness.LeakDBRecords, leakStoreMounted,
		crashCleanupErr, crashUnreached, crashPanics, crashLockHeld,
	}
	for kind := range totals {
		if !contains(kinds, kind) {
			kinds = append(kinds, kind)
		}
	}
	var table []string
	for _, k := range kinds {
		table = append(table, fmt.Sprintf("  %-40s %d", k, totals[k]))
	}
	t.Logf("kill points: %d (%d named, %d random) in %v; ops before the kills: %d; leaks by kind:\n%s",
		rounds, named, rounds-named, time.Since(started).Round(time.Second), rig.ops.Load(), strings.Join(table, "\n"))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type crashRig struct {
	t     *testing.T
	d     *harness.Daemon
	image string
	host  *harness.HostState
	base  *harness.DaemonState
	ops   atomic.Int64
}

// round runs the load until floe dies at p, restarts floe, cleans up
// through the CRI, stops floe and returns what was left behind, by kind.
func (r *crashRig) round(i int, p crashPoint) map[string][]string {
	t, d := r.t, r.d
	leaks := map[string][]string{}
	// A named step runs the failpoint build of floe; "" the normal one.
	d.CrashAt(p.failpoint)
	logStart := len(d.Log())
	d.Start()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < crashWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.load(ctx, d.Runtime, i, w)
		}()
	}
	if p.failpoint != "" {
		if !d.WaitExit(90 * time.Second) {
			leaks[crashUnreached] = []string{p.failpoint}
			d.Kill9()
		}
	} else {
		time.Sleep(p.delay)
		d.Kill9()
	}
	cancel()
	wg.Wait()

	d.CrashAt("")
	// floe's statelock waits for a dead holder's lock to go; whoever still
	// has it open right after the kill is worth knowing.
	if h := harness.FileHolders(filepath.Join(d.StateDir, "floe.lock")); len(h) > 0 {
		t.Logf("round %d: state lock still open right after the kill by %v", i, h)
	}
	if h := d.WaitStateLockFree(10 * time.Second); len(h) > 0 {
		leaks[crashLockHeld] = h
	}
	d.Start()
	if errs := criCleanup(d); len(errs) > 0 {
		leaks[crashCleanupErr] = errs
	}
	d.Stop()
	if m := append(harness.MountsUnder(d.StorageRoot), harness.MountsUnder(d.StorageRunRoot)...); len(m) > 0 {
		leaks[leakStoreMounted] = m
	}
	if n := strings.Count(d.Log()[logStart:], "panic:"); n > 0 {
		leaks[crashPanics] = []string{fmt.Sprintf("%d in %s", n, d.LogPath)}
	}
	// Processes that are on their way out (a monitor whose container was
	// just deleted) get a moment; whatever is still there is a leak.
	deadline := time.Now().Add(10 * time.Second)
	for {
		found := r.host.Leaks(t, d.IPAMDir)
		for kind, items := range r.base.Leaks(d.State(t)) {
			found[kind] = items
		}
		if len(found) == 0 || time.Now().After(deadline) {
			for kind, items := range found {
				leaks[kind] = items
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("round %d: kill %s: %d kinds of leftovers", i, p, len(leaks))
	return leaks
}

// load is one client: pods with a container, exec in it, and (every
// other pod) stop and remove it all again, until an RPC fails (floe died)
// or ctx ends. A third of the pods share their PID namespace.
func (r *crashRig) load(ctx context.Context, rt runtimeapi.RuntimeServiceClient, round, w int) {
	for cycle := 0; ctx.Err() == nil; cycle++ {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := r.cycle(cctx, rt, fmt.Sprintf("crash%d-%d-%d", round, w, cycle), w%3 == 0, (w+cycle)%2 == 0)
		cancel()
		if err != nil {
			return
		}
	}
}

func (r *crashRig) cycle(ctx context.Context, rt runtimeapi.RuntimeServiceClient, name string, sharedPID, remove bool) error {
	cfg := podConfig(name)
	if sharedPID {
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	}
	pod, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return err
	}
	r.ops.Add(1)
	ccfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
		Image:    &runtimeapi.ImageSpec{Image: r.image},
		Command:  []string{"sleep", "1000"},
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: cfg.Linux.SecurityContext.NamespaceOptions}},
	}
	c, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: ccfg, SandboxConfig: cfg})
	if err != nil {
		return err
	}
	r.ops.Add(1)
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		return err
	}
	r.ops.Add(1)
	for j := 0; j < 2; j++ {
		if _, err := rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c.ContainerId, Cmd: []string{"sh", "-c", "echo hi; sleep 0.2"}, Timeout: 10}); err != nil {
			return err
		}
		r.ops.Add(1)
	}
	if !remove {
		return nil
	}
	steps := []func() error{
		func() error {
			_, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c.ContainerId})
			return err
		},
		func() error {
			_, err := rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.ContainerId})
			return err
		},
		func() error {
			_, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId})
			return err
		},
		func() error {
			_, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId})
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
		r.ops.Add(1)
	}
	return nil
}

// criCleanup removes everything the way the kubelet does after a runtime
// restart: list, stop and remove every container, then every pod. A
// failure is retried (the kubelet would, on its next sync); what still
// fails after three tries is returned. At the end both lists must be empty.
func criCleanup(d *harness.Daemon) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rt := d.Runtime
	var errs []string
	for try := 0; try < 3; try++ {
		errs = nil
		note := func(what, id string, err error) {
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s %s: %v", what, id, err))
			}
		}
		cs, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
		note("list containers", "", err)
		for _, c := range cs.GetContainers() {
			_, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c.Id})
			note("stop container", c.Id, err)
			_, err = rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id})
			note("remove container", c.Id, err)
		}
		ps, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		note("list pods", "", err)
		for _, p := range ps.GetItems() {
			_, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id})
			note("stop pod", p.Id, err)
			_, err = rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id})
			note("remove pod", p.Id, err)
		}
		if len(errs) == 0 {
			break
		}
		time.Sleep(time.Second)
	}
	cs, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(cs.GetContainers()) > 0 {
		errs = append(errs, fmt.Sprintf("containers listed after the cleanup: %v %v", cs.GetContainers(), err))
	}
	ps, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(ps.GetItems()) > 0 {
		errs = append(errs, fmt.Sprintf("pods listed after the cleanup: %v %v", ps.GetItems(), err))
	}
	sort.Strings(errs)
	return errs
}
