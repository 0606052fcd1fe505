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
	crashWorkers  = 6
	crashMaxDelay = 4 * time.Second
	// crashBusyAfter: a random kill this late must find work completed.
	crashBusyAfter = 2 * time.Second
	crashEnvPoints = "CRASH_POINTS" // the long version: this many kill points
	crashEnvSeed   = "CRASH_SEED"   // replays the random delays of a run
	// Kinds of trouble the crash test reports besides the leak checks'.
	leakStoreMounted = "image store mounts after SIGTERM"
	crashCleanupErr  = "CRI cleanup failures (after 3 tries)"
	crashCleanupHeal = "CRI cleanup failures a retry got past"
	crashLoadErr     = "unexpected RPC errors of the load"
	crashNoWork      = "rounds with no work before the kill"
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
// records. Nothing is hidden: the clients' errors are counted by kind and
// only those a kill explains pass (harness.ClassifyKillError), cleanup
// errors count even when a retry got past them, panics fail, and the work
// done before each kill is counted so an idle load cannot pass. The long
// version: make crash-test (CRASH_POINTS=200).
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
		crashCleanupErr, crashCleanupHeal, crashLoadErr, crashNoWork, crashUnreached, crashPanics, crashLockHeld,
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
	t.Logf("kill points: %d (%d named, %d random) in %v; work before the kills: %s; load errors: %s; leaks by kind:\n%s",
		rounds, named, rounds-named, time.Since(started).Round(time.Second), &rig.work.total, rig.work.errorSummary(), strings.Join(table, "\n"))
	// Six clients over every round: fewer completed calls than rounds
	// means the load mostly did nothing and the kills hit an idle daemon.
	if done := rig.work.total.completed(); done < int64(rounds) {
		t.Errorf("only %d CRI calls completed before the kills in %d rounds: the load did (almost) nothing", done, rounds)
	}
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
	work  crashWork
}

// round runs the load until floe dies at p, checks what the load did and
// met, then restartAndClean; it returns every kind of trouble found.
func (r *crashRig) round(i int, p crashPoint) map[string][]string {
	t, d := r.t, r.d
	leaks := map[string][]string{}
	// A named step runs the failpoint build of floe; "" the normal one.
	d.CrashAt(p.failpoint)
	d.Start()
	ctx, cancel := context.WithCancel(context.Background())
	load := &crashLoad{rig: r, errs: map[string]int{}}
	var wg sync.WaitGroup
	for w := 0; w < crashWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			load.run(ctx, d.Runtime, i, w)
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
	// What the load did is counted up to here: calls that end after the
	// kill fail (Unavailable) and count as errors, not work.
	before := load.counts.snapshot()
	cancel()
	wg.Wait()
	r.work.addRound(before, load.errs)
	t.Logf("round %d: kill %s: work before the kill: %s; load errors: %v", i, p, before, load.errs)
	if len(load.unexpected) > 0 {
		leaks[crashLoadErr] = load.unexpected
	}
	// A random moment is at least 50 ms after six clients started: by
	// then each has sent its first RunPodSandbox; from crashBusyAfter on,
	// some call must have completed too (a pod start takes a fraction of
	// a second). A named step is reached only through the calls before
	// it, which the failpoint check covers.
	switch {
	case p.failpoint != "":
	case before.calls.Load() == 0:
		leaks[crashNoWork] = []string{fmt.Sprintf("no CRI call was even sent in %v", p.delay)}
	case p.delay >= crashBusyAfter && before.completed() == 0:
		leaks[crashNoWork] = []string{fmt.Sprintf("no CRI call completed in %v (%d sent)", p.delay, before.calls.Load())}
	}
	for kind, items := range r.restartAndClean(i) {
		leaks[kind] = items
	}
	t.Logf("round %d: kill %s: %d kinds of leftovers", i, p, len(leaks))
	return leaks
}

// restartAndClean restarts the killed floe, cleans up through the CRI,
// stops floe and returns what was left behind, by kind.
func (r *crashRig) restartAndClean(i int) map[string][]string {
	t, d := r.t, r.d
	leaks := map[string][]string{}
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
	cctx, ccancel := context.WithTimeout(context.Background(), 3*time.Minute)
	rep := harness.CRICleanup(cctx, d.Runtime, 3)
	ccancel()
	if len(rep.Errors) > 0 {
		t.Logf("round %d: CRI cleanup errors in %d tries: %s", i, rep.Tries, strings.Join(rep.Errors, "; "))
	}
	if len(rep.Persistent) > 0 {
		leaks[crashCleanupErr] = rep.Persistent
	}
	if h := rep.Healed(); len(h) > 0 {
		leaks[crashCleanupHeal] = h
	}
	// The counter covers the restarted daemon (the log check below, the
	// killed one too).
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	if n, err := d.PanicsCounted(pctx); err != nil {
		t.Errorf("round %d: %v", i, err)
	} else if n > 0 {
		leaks[crashPanics] = append(leaks[crashPanics], fmt.Sprintf("floe_cri_panics_total = %v", n))
	}
	pcancel()
	// Read here, the killed daemon's panics are this round's (and not
	// reported again by Stop's own check).
	if lines := d.NewPanics(); len(lines) > 0 {
		leaks[crashPanics] = append(leaks[crashPanics], lines...)
	}
	d.Stop()
	if m := append(harness.MountsUnder(d.StorageRoot), harness.MountsUnder(d.StorageRunRoot)...); len(m) > 0 {
		leaks[leakStoreMounted] = m
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
	return leaks
}

// crashCounts is the work of a round's (or a run's) load clients.
type crashCounts struct {
	calls                                     atomic.Int64 // CRI calls sent
	pods, containers, starts, execs, removals atomic.Int64 // completed
}

func (c *crashCounts) completed() int64 {
	return c.pods.Load() + c.containers.Load() + c.starts.Load() + c.execs.Load() + c.removals.Load()
}

func (c *crashCounts) snapshot() *crashCounts {
	s := &crashCounts{}
	s.add(c)
	return s
}

func (c *crashCounts) add(o *crashCounts) {
	c.calls.Add(o.calls.Load())
	c.pods.Add(o.pods.Load())
	c.containers.Add(o.containers.Load())
	c.starts.Add(o.starts.Load())
	c.execs.Add(o.execs.Load())
	c.removals.Add(o.removals.Load())
}

func (c *crashCounts) String() string {
	return fmt.Sprintf("%d calls sent, %d pods and %d containers created, %d started, %d execs, %d stop/remove steps",
		c.calls.Load(), c.pods.Load(), c.containers.Load(), c.starts.Load(), c.execs.Load(), c.removals.Load())
}

// crashWork is the run's total: the work done before each kill and the
// load's errors by kind.
type crashWork struct {
	total crashCounts
	errs  map[string]int
}

func (w *crashWork) addRound(before *crashCounts, errs map[string]int) {
	w.total.add(before)
	if w.errs == nil {
		w.errs = map[string]int{}
	}
	for kind, n := range errs {
		w.errs[kind] += n
	}
}

func (w *crashWork) errorSummary() string {
	var parts []string
	for kind, n := range w.errs {
		parts = append(parts, fmt.Sprintf("%s: %d", kind, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// crashLoad is one round's clients: what they did and every error that
// stopped one, by kind (harness.ClassifyKillError).
type crashLoad struct {
	rig        *crashRig
	counts     crashCounts
	mu         sync.Mutex
	errs       map[string]int
	unexpected []string
}

// run is one client: pods with a container, exec in it, and (every
// other pod) stop and remove it all again, until an RPC fails (floe died)
// or ctx ends. A third of the pods share their PID namespace. The error
// that stops it is counted; one a kill does not explain fails the round.
func (l *crashLoad) run(ctx context.Context, rt runtimeapi.RuntimeServiceClient, round, w int) {
	for cycle := 0; ctx.Err() == nil; cycle++ {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		name := fmt.Sprintf("crash%d-%d-%d", round, w, cycle)
		err := l.cycle(cctx, rt, name, w%3 == 0, (w+cycle)%2 == 0)
		cancel()
		if err != nil {
			kind, expected := harness.ClassifyKillError(err, ctx.Err() != nil)
			l.mu.Lock()
			l.errs[kind]++
			if !expected {
				l.unexpected = append(l.unexpected, fmt.Sprintf("worker %d, pod %s: %v", w, name, err))
			}
			l.mu.Unlock()
			return
		}
	}
}

// call sends one CRI call, counting it as sent and, when it succeeds, in
// done.
func (l *crashLoad) call(done *atomic.Int64, f func() error) error {
	l.counts.calls.Add(1)
	if err := f(); err != nil {
		return err
	}
	done.Add(1)
	return nil
}

// crashStep is one CRI call of a cycle and the count it adds to.
type crashStep struct {
	done *atomic.Int64
	f    func() error
}

func (l *crashLoad) cycle(ctx context.Context, rt runtimeapi.RuntimeServiceClient, name string, sharedPID, remove bool) error {
	cfg := podConfig(name)
	if sharedPID {
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	}
	var podID, ctrID string
	if err := l.call(&l.counts.pods, func() error {
		pod, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
		podID = pod.GetPodSandboxId()
		return err
	}); err != nil {
		return err
	}
	ccfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
		Image:    &runtimeapi.ImageSpec{Image: l.rig.image},
		Command:  []string{"sleep", "1000"},
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: cfg.Linux.SecurityContext.NamespaceOptions}},
	}
	steps := []crashStep{
		{&l.counts.containers, func() error {
			c, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: ccfg, SandboxConfig: cfg})
			ctrID = c.GetContainerId()
			return err
		}},
		{&l.counts.starts, func() error {
			_, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ctrID})
			return err
		}},
	}
	exec := func() error {
		_, err := rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ctrID, Cmd: []string{"sh", "-c", "echo hi; sleep 0.2"}, Timeout: 10})
		return err
	}
	steps = append(steps, crashStep{&l.counts.execs, exec}, crashStep{&l.counts.execs, exec})
	for _, s := range steps {
		if err := l.call(s.done, s.f); err != nil {
			return err
		}
	}
	if !remove {
		return nil
	}
	removals := []func() error{
		func() error {
			_, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ctrID})
			return err
		},
		func() error {
			_, err := rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: ctrID})
			return err
		},
		func() error {
			_, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID})
			return err
		},
		func() error {
			_, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID})
			return err
		},
	}
	for _, f := range removals {
		if err := l.call(&l.counts.removals, f); err != nil {
			return err
		}
	}
	return nil
}
