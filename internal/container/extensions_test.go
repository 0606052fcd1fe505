package container

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/errdefs"
)

// recordingHooks records the events and may fail or adjust creations.
type recordingHooks struct {
	mu         sync.Mutex
	events     []string
	failCreate bool
}

func (r *recordingHooks) add(ev string, c *Container) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev+" "+c.Spec.Name)
}

func (r *recordingHooks) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

func (r *recordingHooks) BlockSync() func() { return func() {} }
func (r *recordingHooks) CreateContainer(_ context.Context, c *Container, s *specs.Spec) error {
	r.add("CreateContainer", c)
	if r.failCreate {
		return errors.New("induced failure")
	}
	s.Process.Env = append(s.Process.Env, "FROM_HOOK=1")
	return nil
}
func (r *recordingHooks) PostCreateContainer(_ context.Context, c *Container) {
	r.add("PostCreateContainer", c)
}
func (r *recordingHooks) StartContainer(_ context.Context, c *Container) error {
	r.add("StartContainer", c)
	return nil
}
func (r *recordingHooks) PostStartContainer(_ context.Context, c *Container) {
	r.add("PostStartContainer", c)
}
func (r *recordingHooks) UpdateContainer(_ context.Context, c *Container, res *specs.LinuxResources) (*specs.LinuxResources, error) {
	r.add("UpdateContainer", c)
	return res, nil
}
func (r *recordingHooks) PostUpdateContainer(_ context.Context, c *Container) {
	r.add("PostUpdateContainer", c)
}
func (r *recordingHooks) StopContainer(_ context.Context, c *Container) { r.add("StopContainer", c) }
func (r *recordingHooks) RemoveContainer(_ context.Context, c *Container) {
	r.add("RemoveContainer", c)
}

func TestHooksSeeTheLifecycleInOrderAndAdjustTheSpec(t *testing.T) {
	h := newHarness(t)
	hooks := &recordingHooks{}
	h.m.SetHooks(hooks)
	id := h.createStarted("c")
	s, err := readBundle(h.stored(id).Bundle)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.Process.Env, "FROM_HOOK=1") {
		t.Errorf("bundle env %v lacks the hook's variable", s.Process.Env)
	}
	// A container that exits by itself is a StopContainer too.
	h.rt.exit(id, 1)
	h.waitState(id, StateExited)
	if err := h.m.Remove(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	want := []string{"CreateContainer c", "PostCreateContainer c", "StartContainer c", "PostStartContainer c", "StopContainer c", "RemoveContainer c"}
	if got := hooks.take(); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestHookFailureUndoesTheCreationAndTheRetryWorks(t *testing.T) {
	h := newHarness(t)
	hooks := &recordingHooks{failCreate: true}
	h.m.SetHooks(hooks)
	if _, err := h.m.Create(context.Background(), testPod, spec("c")); err == nil || !strings.Contains(err.Error(), "induced failure") {
		t.Fatalf("create with a failing hook: %v", err)
	}
	if got := hooks.take(); !slices.Equal(got, []string{"CreateContainer c", "RemoveContainer c"}) {
		t.Errorf("events %q", got)
	}
	if n := len(h.m.List(Filter{})); n != 0 || len(h.imgs.layers) != 0 {
		t.Errorf("left behind: %d containers, layers %v", n, h.imgs.layers)
	}
	hooks.failCreate = false
	id := h.create("c")
	if c, err := h.m.Get(id); err != nil || c.State != StateCreated {
		t.Errorf("retry: %v %v", c, err)
	}
}

// fakeDevices knows one CDI device.
type fakeDevices struct{ injected []string }

func (f *fakeDevices) Check(devices []string) error {
	for _, d := range devices {
		if d != "example.com/dev=a" {
			return errdefs.InvalidArgument("config.CDI_devices", "unknown CDI device(s) %s", d)
		}
	}
	return nil
}

func (f *fakeDevices) Inject(s *specs.Spec, devices []string) error {
	f.injected = append(f.injected, devices...)
	s.Process.Env = append(s.Process.Env, "CDI=1")
	return nil
}

func TestCDIDevicesCheckedFirstAndInjected(t *testing.T) {
	h := newHarness(t)
	devs := &fakeDevices{}
	h.m.opts.Devices = devs
	sp := spec("c")
	sp.CDIDevices = []string{"example.com/dev=b"}
	if _, err := h.m.Create(context.Background(), testPod, sp); errdefs.KindOf(err) != errdefs.KindInvalidArgument || !strings.Contains(err.Error(), "example.com/dev=b") {
		t.Fatalf("unknown device: %v", err)
	}
	if len(h.m.List(Filter{})) != 0 || len(h.imgs.layers) != 0 {
		t.Error("a refused container left something")
	}
	sp.CDIDevices = []string{"example.com/dev=a"}
	id, err := h.m.Create(context.Background(), testPod, sp)
	if err != nil {
		t.Fatal(err)
	}
	s, err := readBundle(h.stored(id).Bundle)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(devs.injected, []string{"example.com/dev=a"}) || !slices.Contains(s.Process.Env, "CDI=1") {
		t.Errorf("injected %v, env %v", devs.injected, s.Process.Env)
	}
}
