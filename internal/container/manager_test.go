package container

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/monitor"
	"github.com/floe-cri/floe/internal/objects"
	"github.com/floe-cri/floe/internal/ocispec"
	"github.com/floe-cri/floe/internal/store"
)

// An exit that lands while a resource update runs must stay recorded:
// the update must not write back the running record it read before.
func TestUpdateResourcesKeepsAConcurrentExit(t *testing.T) {
	h := newHarness(t)
	id := h.createStarted("c")
	h.rt.onUpdate = func(id string) {
		// The container exits while runc update runs; give the exit
		// watcher the time to record it (it cannot while the update
		// holds the container).
		h.rt.exit(id, 0)
		deadline := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(deadline) {
			if c, err := h.m.Get(id); err == nil && c.State == StateExited {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	if err := h.m.UpdateResources(context.Background(), id, ocispec.Resources{CPUShares: 512}); err != nil {
		t.Fatal(err)
	}
	h.waitState(id, StateExited)
	if c, _ := h.m.Get(id); c.Spec.OCI.Resources.CPUShares != 512 {
		t.Errorf("resources not recorded: %+v", c.Spec.OCI.Resources)
	}
}

// A StartContainer whose caller goes away while runc start runs (the
// kubelet's deadline, a closed connection, a daemon killed right after)
// must let runc start finish and record the container running: a start
// killed midway may already have started the process.
func TestStartOutlivesItsCaller(t *testing.T) {
	h := newHarness(t)
	id := h.create("c")
	ctx, cancel := context.WithCancel(context.Background())
	h.rt.onStart = func(runCtx context.Context, _ string) error {
		cancel()
		select {
		case <-runCtx.Done():
			return runCtx.Err() // what a killed `runc start` looks like
		case <-time.After(50 * time.Millisecond):
			return nil
		}
	}
	if err := h.m.Start(ctx, id); err != nil {
		t.Fatalf("start whose caller left: %v", err)
	}
	h.waitState(id, StateRunning)
}

// A start that an orphaned `runc start` carried out after the restart
// (floe found the container created) is recorded by the kubelet's retry
// instead of failing it.
func TestStartOfAContainerStartedMeanwhileRecordsIt(t *testing.T) {
	h := newHarness(t)
	id := h.create("c")
	h.rt.mu.Lock()
	h.rt.ctrs[id].status = monitor.StatusRunning // the orphaned start
	h.rt.mu.Unlock()
	if err := h.m.Start(context.Background(), id); err != nil {
		t.Fatalf("start of a container that runs: %v", err)
	}
	h.waitState(id, StateRunning)
	// A start that fails while the container is not running still fails.
	other := h.create("d")
	h.rt.onStart = func(context.Context, string) error { return errors.New("runc start: boom") }
	if err := h.m.Start(context.Background(), other); err == nil {
		t.Fatal("a failed start of a created container succeeded")
	}
	h.waitState(other, StateCreated)
}

func TestIllegalTransitionIsATypedErrorAndChangesNothing(t *testing.T) {
	h := newHarness(t)
	id := h.createStarted("c")
	h.rt.exit(id, 0)
	h.waitState(id, StateExited)
	for _, to := range []State{StateRunning, StateCreated, StateCreating} {
		_, err := h.m.update(id, func(c *Container) error {
			c.State = to
			c.ExitCode = 99
			return nil
		})
		var te *TransitionError
		if !errors.As(err, &te) || te.From != StateExited || te.To != to {
			t.Fatalf("exited -> %s: got %v, want a TransitionError", to, err)
		}
		if errdefs.KindOf(err) != errdefs.KindFailedPrecondition {
			t.Errorf("exited -> %s: kind %v, want FailedPrecondition", to, errdefs.KindOf(err))
		}
	}
	if c, _ := h.m.Get(id); c.ExitCode != 0 || c.State != StateExited {
		t.Errorf("in memory after refused updates: %s code %d", c.State, c.ExitCode)
	}
	if rec := h.stored(id); rec.ExitCode != 0 || rec.State != StateExited {
		t.Errorf("stored after refused updates: %s code %d", rec.State, rec.ExitCode)
	}
	// Starting it again is refused before the runtime is asked.
	if err := h.m.Start(context.Background(), id); errdefs.KindOf(err) != errdefs.KindFailedPrecondition {
		t.Errorf("start of an exited container: %v", err)
	}
}

func TestTransitionTable(t *testing.T) {
	all := []State{StateCreating, StateCreated, StateRunning, StateExited, stateRemoving, stateRemoved}
	legal := map[[2]State]bool{
		{StateCreating, StateCreated}: true, {StateCreating, stateRemoved}: true,
		{StateCreated, StateRunning}: true, {StateCreated, StateExited}: true, {StateCreated, stateRemoving}: true,
		{StateRunning, StateExited}: true, {StateRunning, stateRemoving}: true,
		{StateExited, stateRemoving}:  true,
		{stateRemoving, stateRemoved}: true,
	}
	for _, from := range all[:5] {
		for _, to := range all {
			want := from == to || legal[[2]State{from, to}]
			if got := transitions.Allowed(from, to); got != want {
				t.Errorf("allowed(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
}

// collect reads events until n arrived or a second passed.
func collect(t *testing.T, sub *Subscription, n int) []Event {
	t.Helper()
	var got []Event
	timeout := time.After(time.Second)
	for len(got) < n {
		select {
		case ev := <-sub.C:
			got = append(got, ev)
		case <-timeout:
			t.Fatalf("got %d events, want %d: %v", len(got), n, got)
		}
	}
	return got
}

func TestExitStopAndRemove(t *testing.T) {
	h := newHarness(t)
	var exitsMu sync.Mutex
	var exits []string
	h.m.opts.OnExit = func(reason string, lost bool) {
		exitsMu.Lock()
		exits = append(exits, reason)
		exitsMu.Unlock()
	}
	sub := h.m.SubscribeEvents(0)
	defer sub.Close()

	// An exit the runtime reports is recorded once, with its code.
	a := h.createStarted("a")
	h.rt.exit(a, 3)
	h.waitState(a, StateExited)
	if c, _ := h.m.Get(a); c.ExitCode != 3 || c.Reason != "Error" || c.FinishedAt == 0 {
		t.Errorf("exit recorded as code %d reason %q finished %d", c.ExitCode, c.Reason, c.FinishedAt)
	}
	// Stopping an exited container does nothing.
	if err := h.m.Stop(context.Background(), a, time.Second); err != nil {
		t.Fatal(err)
	}

	// StopContainer records the exit the runtime returns.
	b := h.createStarted("b")
	if err := h.m.Stop(context.Background(), b, time.Second); err != nil {
		t.Fatal(err)
	}
	if c, _ := h.m.Get(b); c.State != StateExited || c.ExitCode != 128+15 {
		t.Errorf("stopped container: %s code %d", c.State, c.ExitCode)
	}

	// Removing deletes the runtime container, the layer and the record.
	if err := h.m.Remove(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Get(b); errdefs.KindOf(err) != errdefs.KindNotFound {
		t.Errorf("removed container still found: %v", err)
	}
	h.waitRemoved(b)
	if _, _, err := h.rt.State(context.Background(), b); err == nil {
		t.Error("removed container is still known to the runtime")
	}
	// Removing again, or an unknown container, succeeds.
	if err := h.m.Remove(context.Background(), b); err != nil {
		t.Fatal(err)
	}

	want := []struct {
		t  EventType
		id string
		st State
	}{
		{EventCreated, a, StateCreated}, {EventStarted, a, StateRunning}, {EventStopped, a, StateExited},
		{EventCreated, b, StateCreated}, {EventStarted, b, StateRunning}, {EventStopped, b, StateExited},
		{EventDeleted, b, StateExited},
	}
	got := collect(t, sub, len(want))
	for i, w := range want {
		if got[i].Type != w.t || got[i].Container.ID != w.id || got[i].Container.State != w.st {
			t.Errorf("event %d: %s %s %s, want %s %s %s", i, got[i].Type, got[i].Container.ID[:6], got[i].Container.State, w.t, w.id[:6], w.st)
		}
	}
	select {
	case ev := <-sub.C:
		t.Errorf("unexpected event %s for %s", ev.Type, ev.Container.ID)
	case <-time.After(50 * time.Millisecond):
	}
	exitsMu.Lock()
	defer exitsMu.Unlock()
	if len(exits) != 2 {
		t.Errorf("OnExit called for %v, want two exits", exits)
	}
}

// createPastDeadline sends a CreateContainer whose runtime create waits
// until the returned channel is closed, and whose caller gives up first.
func (h *harness) createPastDeadline(name string) chan<- struct{} {
	h.t.Helper()
	release := make(chan struct{})
	h.rt.onCreate = func(ctx context.Context, id string) error {
		<-release
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.m.Create(ctx, testPod, spec(name)); !errors.Is(err, context.DeadlineExceeded) {
		h.t.Fatalf("create past its deadline: %v", err)
	}
	return release
}

// A creation that outlives its caller's deadline is kept for the retry,
// which gets the same container, not a second one.
func TestCreateRetryAfterDeadlineGetsTheSameContainer(t *testing.T) {
	h := newHarness(t)
	sub := h.m.SubscribeEvents(0)
	defer sub.Close()
	release := h.createPastDeadline("slow")
	// A different request for the same name is refused meanwhile.
	other := spec("slow")
	other.Image = fakeImageID
	if _, err := h.m.Create(context.Background(), testPod, other); errdefs.KindOf(err) != errdefs.KindAlreadyExists {
		t.Fatalf("conflicting create during the creation: %v", err)
	}
	close(release)
	created := collect(t, sub, 1)[0]
	id := created.Container.ID
	if created.Type != EventCreated || !created.Container.Unclaimed {
		t.Fatalf("first event %s, unclaimed %v", created.Type, created.Container.Unclaimed)
	}
	if n := len(h.m.List(Filter{})); n != 0 {
		t.Errorf("an unclaimed container is listed (%d)", n)
	}

	got, err := h.m.Create(context.Background(), testPod, spec("slow"))
	if err != nil || got != id {
		t.Fatalf("retry got %q, %v; want %s", got, err, id)
	}
	if l := h.m.List(Filter{}); len(l) != 1 || l[0].ID != id {
		t.Errorf("after the retry, listed %v", l)
	}
	if rec := h.stored(id); rec.Unclaimed || rec.State != StateCreated {
		t.Errorf("stored after the retry: unclaimed %v state %s", rec.Unclaimed, rec.State)
	}
	if len(h.rt.ctrs) != 1 {
		t.Errorf("the runtime has %d containers, want 1", len(h.rt.ctrs))
	}
	// The claimed container keeps its name: a third identical request
	// is a conflict, not a second container.
	if _, err := h.m.Create(context.Background(), testPod, spec("slow")); errdefs.KindOf(err) != errdefs.KindAlreadyExists {
		t.Errorf("create after the claim: %v", err)
	}
}

// A retry that arrives while the creation still runs waits for it.
func TestCreateRetryDuringCreationWaits(t *testing.T) {
	h := newHarness(t)
	release := h.createPastDeadline("slow")
	done := make(chan string)
	go func() {
		id, err := h.m.Create(context.Background(), testPod, spec("slow"))
		if err != nil {
			t.Error(err)
		}
		done <- id
	}()
	time.Sleep(20 * time.Millisecond)
	close(release)
	id := <-done
	if c, err := h.m.Get(id); err != nil || c.Unclaimed || c.State != StateCreated {
		t.Fatalf("retried container: %+v, %v", c, err)
	}
	if l := h.m.List(Filter{}); len(l) != 1 {
		t.Errorf("listed %d containers, want 1", len(l))
	}
}

// A failed creation leaves nothing behind.
func TestCreateFailureIsUndone(t *testing.T) {
	h := newHarness(t)
	h.rt.onCreate = func(ctx context.Context, id string) error {
		return errors.New("runc create: boom")
	}
	if _, err := h.m.Create(context.Background(), testPod, spec("c")); err == nil {
		t.Fatal("create succeeded")
	}
	n := 0
	h.db.ForEach(store.Containers, func(string, []byte) error { n++; return nil })
	if _, hidden := h.m.table.Len(); n != 0 || len(h.imgs.layers) != 0 || hidden != 0 {
		t.Errorf("left %d records, %d layers, %d creations", n, len(h.imgs.layers), hidden)
	}
	// The name is free again.
	h.rt.onCreate = nil
	h.create("c")
}

// After a restart every container is where its runtime says: running
// ones are followed again, exits that happened while floe was down are
// recorded, a start floe did not live to record is picked up, and an
// interrupted creation is undone.
func TestRestoreAfterRestart(t *testing.T) {
	h := newHarness(t)
	running := h.createStarted("running")
	created := h.create("created")
	exitedWhileDown := h.createStarted("exited-while-down")
	startedWhileDown := h.create("started-while-down")
	exited := h.createStarted("exited")
	h.rt.exit(exited, 0)
	h.waitState(exited, StateExited)

	h.close()
	h.rt.exit(exitedWhileDown, 7)
	if err := h.rt.Start(context.Background(), &monitor.Container{ID: startedWhileDown}); err != nil {
		t.Fatal(err)
	}
	// A creation interrupted by the crash: its record says creating and
	// the runtime got as far as creating it.
	db, err := store.Open(h.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	const interrupted = "1111111111111111111111111111111111111111111111111111111111111111"
	bundle := filepath.Join(h.dir, "bundles", interrupted)
	if _, err := h.rt.Create(context.Background(), monitor.CreateOptions{ID: interrupted, Bundle: bundle}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.imgs.CreateContainerLayer(fakeImageID, interrupted, ""); err != nil {
		t.Fatal(err)
	}
	rec := &Container{Meta: objects.Meta{ID: interrupted}, SandboxID: testPod, Spec: spec("interrupted"), State: StateCreating, Bundle: bundle}
	if err := db.Put(store.Containers, interrupted, rec); err != nil {
		t.Fatal(err)
	}
	db.Close()

	h.open()
	for id, want := range map[string]State{
		running: StateRunning, created: StateCreated, exitedWhileDown: StateExited,
		startedWhileDown: StateRunning, exited: StateExited,
	} {
		h.waitState(id, want)
	}
	if c, _ := h.m.Get(exitedWhileDown); c.ExitCode != 7 {
		t.Errorf("exit while down recorded with code %d", c.ExitCode)
	}
	if h.stored(interrupted) != nil || h.imgs.layers[interrupted] {
		t.Error("the interrupted creation was not undone")
	}
	if _, _, err := h.rt.State(context.Background(), interrupted); err == nil {
		t.Error("the interrupted creation's runtime container was not deleted")
	}
	if _, err := h.m.Create(context.Background(), testPod, spec("running")); errdefs.KindOf(err) != errdefs.KindAlreadyExists {
		t.Errorf("a restored container's name is not reserved: %v", err)
	}
	// Containers running before the restart (and the one started while
	// floe was down) are followed again.
	h.rt.exit(running, 0)
	h.rt.exit(startedWhileDown, 0)
	h.waitState(running, StateExited)
	h.waitState(startedWhileDown, StateExited)
	// The created one can still be started.
	if err := h.m.Start(context.Background(), created); err != nil {
		t.Fatal(err)
	}
	h.waitState(created, StateRunning)
}

// The user and the cgroup are recorded at creation; records from before
// get them from the bundle once, at the next start of floe.
func TestSpecFactsAreRecordedOnce(t *testing.T) {
	h := newHarness(t)
	id := h.createStarted("c")
	c, err := h.m.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if c.User == nil || c.CgroupsPath == "" {
		t.Fatalf("user %v, cgroupsPath %q not recorded", c.User, c.CgroupsPath)
	}
	if p, err := h.m.CgroupPath(c); err != nil || p != c.CgroupsPath {
		t.Errorf("cgroup path %q, %v; want %q", p, err, c.CgroupsPath)
	}
	want := *c.User
	if _, err := h.m.update(id, func(c *Container) error {
		c.User, c.CgroupsPath = nil, ""
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.restart()
	if rec := h.stored(id); rec.User == nil || rec.User.UID != want.UID || rec.CgroupsPath != c.CgroupsPath {
		t.Errorf("older record not filled in from the bundle: user %v, cgroupsPath %q", rec.User, rec.CgroupsPath)
	}
}

// RemoveContainer answers before the writable layer and the bundle are
// deleted: the container is gone at once and its name free for a new
// one, and a removal the store keeps failing (or a crash) leaves a
// record saying "removing" that is retried, and finished after a restart.
func TestRemoveFinishesInTheBackground(t *testing.T) {
	h := newHarness(t)
	sub := h.m.SubscribeEvents(0)
	defer sub.Close()
	old := h.createStarted("a")
	collect(t, sub, 2) // created, started
	h.imgs.mu.Lock()
	h.imgs.deleteErr = errors.New("device busy")
	h.imgs.mu.Unlock()
	if err := h.m.Remove(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	if ev := collect(t, sub, 2); ev[0].Type != EventStopped || ev[1].Type != EventDeleted || ev[1].Container.ID != old {
		t.Errorf("events of the removal: %v", ev)
	}
	if _, err := h.m.Get(old); errdefs.KindOf(err) != errdefs.KindNotFound {
		t.Errorf("removed container still found: %v", err)
	}
	if got := h.m.List(Filter{}); len(got) != 0 {
		t.Errorf("removed container still listed: %d", len(got))
	}
	if rec := h.stored(old); rec == nil || rec.State != stateRemoving {
		t.Fatalf("record of a removal whose layer is not deleted yet: %+v", rec)
	}
	if !h.imgs.hasLayer(old) {
		t.Fatal("the layer is gone although deleting it fails")
	}
	// The name is free at once.
	renewed := h.create("a")
	if renewed == old {
		t.Fatal("the new container got the removed one's id")
	}
	if err := h.m.Remove(context.Background(), old); err != nil {
		t.Errorf("removing a container being removed: %v", err)
	}
	// A restart finds the removal still to finish, and finishes it once
	// the store lets it.
	h.restart()
	if rec := h.stored(old); rec == nil || rec.State != stateRemoving {
		t.Fatalf("record after a restart with the layer still undeletable: %+v", rec)
	}
	if _, err := h.m.Get(old); errdefs.KindOf(err) != errdefs.KindNotFound {
		t.Errorf("container being removed found after a restart: %v", err)
	}
	if c, err := h.m.Get(renewed); err != nil || c.State != StateCreated {
		t.Errorf("the new container after the restart: %v", err)
	}
	if err := h.m.FinishRemovals(); err == nil {
		t.Error("FinishRemovals succeeded although the layer cannot be deleted")
	}
	h.imgs.mu.Lock()
	h.imgs.deleteErr = nil
	h.imgs.mu.Unlock()
	// RemoveImage finishes the removals in its own call, not later.
	if err := h.m.FinishRemovals(); err != nil {
		t.Fatal(err)
	}
	if h.stored(old) != nil || h.imgs.hasLayer(old) {
		t.Error("FinishRemovals returned with the removal unfinished")
	}
	if !h.imgs.hasLayer(renewed) {
		t.Error("the new container's layer went with the old one's")
	}
	// A shutdown finishes the removals already answered.
	if err := h.m.Remove(context.Background(), renewed); err != nil {
		t.Fatal(err)
	}
	h.close()
	if h.imgs.hasLayer(renewed) {
		t.Error("a clean shutdown left an answered removal unfinished")
	}
	h.open()
	h.waitRemoved(renewed)
}

// A created container whose conmon died has no exit to read: stopping it
// records it exited with the exit unknown instead of failing (which would
// fail every StopPodSandbox of its pod), and it can be removed. Any other
// stop failure is the caller's.
func TestStopWithoutMonitorRecordsUnknownExit(t *testing.T) {
	h := newHarness(t)
	lost := h.create("lost")
	other := h.create("other")
	h.rt.onStop = func(id string) error {
		if id == lost {
			return fmt.Errorf("container %s: conmon 42: %w", id, monitor.ErrMonitorLost)
		}
		return errors.New("runtime refuses")
	}
	if err := h.m.Stop(context.Background(), lost, time.Second); err != nil {
		t.Fatalf("stop of a container without its monitor: %v", err)
	}
	c, _ := h.m.Get(lost)
	if c.State != StateExited || c.ExitCode != -1 || !strings.Contains(c.Message, "exit status unknown") {
		t.Errorf("stopped container: %s code %d message %q", c.State, c.ExitCode, c.Message)
	}
	if err := h.m.Stop(context.Background(), other, time.Second); err == nil || !strings.Contains(err.Error(), "runtime refuses") {
		t.Errorf("stop failure of the runtime: %v", err)
	}
	h.rt.onStop = nil
	if err := h.m.Remove(context.Background(), lost); err != nil {
		t.Fatalf("remove: %v", err)
	}
	h.waitRemoved(lost)
}
