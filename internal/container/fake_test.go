package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	ociv1 "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/images"
	"github.com/floe-cri/floe/internal/monitor"
	"github.com/floe-cri/floe/internal/objects"
	"github.com/floe-cri/floe/internal/sandbox"
	"github.com/floe-cri/floe/internal/store"
)

// fakeRuntime stands in for conmon + runc: it keeps each container's
// state in memory and exits a container when the test says so. Like
// conmon's containers, its containers outlive a Manager, so one fake
// shared by two managers acts out a daemon restart.
type fakeRuntime struct {
	mu      sync.Mutex
	ctrs    map[string]*fakeContainer
	nextPid int

	// Hooks, called without mu held; nil means no-op.
	onCreate func(ctx context.Context, id string) error
	onUpdate func(id string)
	onStart  func(ctx context.Context, id string) error
	onStop   func(id string) error

	// restoredFrom is the criu image directory of each container
	// created with CreateOptions.RestoreFrom (which runs it at once).
	restoredFrom map[string]string
}

type fakeContainer struct {
	status monitor.Status
	exit   *monitor.Exit
	exited chan struct{}
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{ctrs: map[string]*fakeContainer{}, nextPid: 1000}
}

func (f *fakeRuntime) get(id string) (*fakeContainer, error) {
	fc, ok := f.ctrs[id]
	if !ok {
		return nil, errdefs.NotFound("fake runtime: container %s does not exist", id)
	}
	return fc, nil
}

func (f *fakeRuntime) Create(ctx context.Context, opts monitor.CreateOptions) (*monitor.Container, error) {
	if f.onCreate != nil {
		if err := f.onCreate(ctx, opts.ID); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ctrs[opts.ID]; ok {
		return nil, fmt.Errorf("fake runtime: container %s exists", opts.ID)
	}
	f.nextPid++
	f.ctrs[opts.ID] = &fakeContainer{status: monitor.StatusCreated, exited: make(chan struct{})}
	if opts.RestoreFrom != "" {
		if f.restoredFrom == nil {
			f.restoredFrom = map[string]string{}
		}
		f.restoredFrom[opts.ID] = opts.RestoreFrom
		f.ctrs[opts.ID].status = monitor.StatusRunning
	}
	return &monitor.Container{ID: opts.ID, Bundle: opts.Bundle, LogPath: opts.LogPath, Pid: f.nextPid, CreatedAt: time.Now()}, nil
}

func (f *fakeRuntime) Start(ctx context.Context, c *monitor.Container) error {
	if f.onStart != nil {
		if err := f.onStart(ctx, c.ID); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fc, err := f.get(c.ID)
	if err != nil {
		return err
	}
	if fc.status != monitor.StatusCreated {
		return fmt.Errorf("fake runtime: container %s is %s", c.ID, fc.status)
	}
	fc.status = monitor.StatusRunning
	return nil
}

// exit makes the container's process end with code.
func (f *fakeRuntime) exit(id string, code int) *monitor.Exit {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc, ok := f.ctrs[id]
	if !ok {
		return nil
	}
	if fc.exit == nil {
		fc.exit = &monitor.Exit{Code: code, FinishedAt: time.Now()}
		fc.status = monitor.StatusStopped
		close(fc.exited)
	}
	e := *fc.exit
	return &e
}

func (f *fakeRuntime) Stop(_ context.Context, c *monitor.Container, sig syscall.Signal, _ time.Duration) (*monitor.Exit, error) {
	if f.onStop != nil {
		if err := f.onStop(c.ID); err != nil {
			return nil, err
		}
	}
	e := f.exit(c.ID, 128+int(sig))
	if e == nil {
		return nil, errdefs.NotFound("fake runtime: container %s does not exist", c.ID)
	}
	return e, nil
}

func (f *fakeRuntime) Delete(_ context.Context, c *monitor.Container) error {
	f.exit(c.ID, 137)
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ctrs, c.ID)
	return nil
}

func (f *fakeRuntime) Wait(ctx context.Context, c *monitor.Container) (*monitor.Exit, error) {
	f.mu.Lock()
	fc, err := f.get(c.ID)
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case <-fc.exited:
		return f.ExitStatus(c)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *fakeRuntime) ExitStatus(c *monitor.Container) (*monitor.Exit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fc, ok := f.ctrs[c.ID]; ok && fc.exit != nil {
		e := *fc.exit
		return &e, nil
	}
	return nil, nil
}

func (f *fakeRuntime) State(_ context.Context, id string) (monitor.Status, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc, err := f.get(id)
	if err != nil {
		return "", 0, err
	}
	return fc.status, 0, nil
}

func (f *fakeRuntime) Update(_ context.Context, c *monitor.Container, _ *specs.LinuxResources) error {
	if f.onUpdate != nil {
		f.onUpdate(c.ID)
	}
	return nil
}

func (f *fakeRuntime) ReopenLog(context.Context, *monitor.Container) error { return nil }

func (f *fakeRuntime) ExecSync(context.Context, *monitor.Container, *specs.Process, time.Duration) (*monitor.ExecResult, error) {
	return &monitor.ExecResult{}, nil
}

func (f *fakeRuntime) Exec(context.Context, *monitor.Container, *specs.Process, monitor.ExecStreams) (int, error) {
	return 0, nil
}

func (f *fakeRuntime) Attach(context.Context, *monitor.Container, monitor.AttachStreams) error {
	return nil
}

func (f *fakeRuntime) Resize(*monitor.Container, uint16, uint16) error { return nil }
func (f *fakeRuntime) CheckpointSupport() error                        { return errors.New("the fake cannot checkpoint") }
func (f *fakeRuntime) Checkpoint(context.Context, *monitor.Container, monitor.CheckpointOptions) error {
	return errors.New("the fake cannot checkpoint")
}

var _ Runtime = (*fakeRuntime)(nil)

// fakeImages is an image store holding one image whose rootfs is an
// empty directory per container.
type fakeImages struct {
	dir string
	mu  sync.Mutex
	// layers holds the container layers that exist.
	layers map[string]bool
	// deleteErr, when set, fails DeleteContainerLayer.
	deleteErr error
}

const fakeImageID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func (f *fakeImages) Status(ref string) (*images.Image, error) {
	if ref != "busybox" && ref != fakeImageID {
		return nil, errdefs.NotFound("image %q not known", ref)
	}
	return &images.Image{
		ID: fakeImageID, RepoTags: []string{"docker.io/library/busybox:latest"},
		Config: &ociv1.Image{Config: ociv1.ImageConfig{Cmd: []string{"sh"}}},
	}, nil
}

func (f *fakeImages) CreateContainerLayer(_, containerID, _ string) (string, error) {
	dir := filepath.Join(f.dir, containerID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	f.mu.Lock()
	f.layers[containerID] = true
	f.mu.Unlock()
	return dir, nil
}

func (f *fakeImages) ContainerChanges(string) ([]images.LayerChange, error) { return nil, nil }

func (f *fakeImages) DeleteContainerLayer(containerID string) error {
	f.mu.Lock()
	if err := f.deleteErr; err != nil {
		f.mu.Unlock()
		return err
	}
	delete(f.layers, containerID)
	f.mu.Unlock()
	return os.RemoveAll(filepath.Join(f.dir, containerID))
}

func (f *fakeImages) MountImage(string, string) (string, error) {
	return "", fmt.Errorf("fake images: no image volumes")
}
func (f *fakeImages) UnmountImage(string, string) error { return nil }
func (f *fakeImages) AdoptImageMount(string, string)    {}

// fakeSandboxes has one ready pod.
type fakeSandboxes struct{ sb *sandbox.Sandbox }

func (f fakeSandboxes) Get(id string) (*sandbox.Sandbox, error) {
	if id != f.sb.ID {
		return nil, errdefs.NotFound("pod sandbox %q not found", id)
	}
	cp := *f.sb
	return &cp, nil
}

// harness is a Manager over a fake runtime, a fake image store and a
// real state database in a temporary directory.
type harness struct {
	t      *testing.T
	dir    string
	dbPath string
	db     *store.DB
	rt     *fakeRuntime
	imgs   *fakeImages
	sbs    fakeSandboxes
	m      *Manager
}

const testPod = "pod0000000000000000000000000000000000000000000000000000000000000"

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{
		t: t, dir: dir, dbPath: filepath.Join(dir, "state.db"),
		rt:   newFakeRuntime(),
		imgs: &fakeImages{dir: filepath.Join(dir, "layers"), layers: map[string]bool{}},
		sbs: fakeSandboxes{&sandbox.Sandbox{
			Meta: objects.Meta{ID: testPod}, State: sandbox.StateReady, RunDir: filepath.Join(dir, "pod"),
			Spec: sandbox.Spec{Name: "pod", Namespace: "default"},
		}},
	}
	h.open()
	t.Cleanup(func() { h.close() })
	return h
}

// open starts a Manager on the database (as a daemon start does).
func (h *harness) open() {
	h.t.Helper()
	db, err := store.Open(h.dbPath)
	if err != nil {
		h.t.Fatal(err)
	}
	h.db = db
	h.m = New(Options{
		DB: db, Images: h.imgs, Runtimes: map[string]Runtime{"": h.rt}, Sandboxes: h.sbs,
		CgroupDriver: "cgroupfs", BundleDir: filepath.Join(h.dir, "bundles"),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := h.m.Restore(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

// close stops the Manager; the fake runtime's containers live on.
func (h *harness) close() {
	if h.m == nil {
		return
	}
	h.m.Close()
	h.db.Close()
	h.m, h.db = nil, nil
}

// restart acts out a daemon restart.
func (h *harness) restart() {
	h.close()
	h.open()
}

func spec(name string) Spec {
	return Spec{Name: name, Image: "busybox"}
}

func (h *harness) create(name string) string {
	h.t.Helper()
	id, err := h.m.Create(context.Background(), testPod, spec(name))
	if err != nil {
		h.t.Fatalf("create %s: %v", name, err)
	}
	return id
}

func (h *harness) createStarted(name string) string {
	h.t.Helper()
	id := h.create(name)
	if err := h.m.Start(context.Background(), id); err != nil {
		h.t.Fatalf("start %s: %v", name, err)
	}
	return id
}

// stored is the container's record in the database.
func (h *harness) stored(id string) *Container {
	h.t.Helper()
	var found *Container
	err := h.db.ForEach(store.Containers, func(k string, data []byte) error {
		if k == id {
			found = &Container{}
			return json.Unmarshal(data, found)
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return found
}

func (f *fakeImages) hasLayer(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.layers[id]
}

// waitRemoved waits until the remover deleted a removed container's
// layer, bundle and record.
func (h *harness) waitRemoved(id string) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec := h.stored(id)
		_, bundleErr := os.Stat(filepath.Join(h.dir, "bundles", id))
		if rec == nil && !h.imgs.hasLayer(id) && errors.Is(bundleErr, fs.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("removed container %s: record %v, layer %v, bundle %v", id, rec != nil, h.imgs.hasLayer(id), bundleErr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitState waits until both the manager and the database say id is st.
func (h *harness) waitState(id string, st State) {
	h.t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := h.m.Get(id)
		rec := h.stored(id)
		if err == nil && c.State == st && rec != nil && rec.State == st {
			return
		}
		if time.Now().After(deadline) {
			got, recGot := State("<none>"), State("<none>")
			if err == nil {
				got = c.State
			}
			if rec != nil {
				recGot = rec.State
			}
			h.t.Fatalf("container %s: state %s in memory, %s in the database; want %s", id, got, recGot, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
