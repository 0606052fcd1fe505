package nri

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/objects"
	"github.com/floe-cri/floe/internal/sandbox"
)

type fakePods struct{ pods []*sandbox.Sandbox }

func (f *fakePods) Get(id string) (*sandbox.Sandbox, error) {
	for _, p := range f.pods {
		if p.ID == id {
			return p, nil
		}
	}
	return nil, errdefs.NotFound("pod %s", id)
}
func (f *fakePods) List(sandbox.Filter) []*sandbox.Sandbox { return f.pods }

type fakeContainers struct {
	mu      sync.Mutex
	list    []*container.Container
	applied map[string]*specs.LinuxResources
}

func (f *fakeContainers) Get(id string) (*container.Container, error) {
	return nil, errdefs.NotFound("container %s", id)
}
func (f *fakeContainers) List(container.Filter) []*container.Container { return f.list }
func (f *fakeContainers) ApplyResources(_ context.Context, id string, r *specs.LinuxResources) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied[id] = r
	return nil
}
func (f *fakeContainers) Stop(context.Context, string, time.Duration) error { return nil }

// plugin injects an env variable and a mount, pins a cpuset, asks for
// an update of another container, and fails the pods and containers
// named "bad".
type plugin struct {
	synced     chan struct{}
	mu         sync.Mutex
	syncedCtrs []string
	events     []string
}

func (p *plugin) Synchronize(_ context.Context, _ []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	p.mu.Lock()
	for _, c := range ctrs {
		p.syncedCtrs = append(p.syncedCtrs, c.Id)
	}
	p.mu.Unlock()
	close(p.synced)
	return nil, nil
}

func (p *plugin) record(ev string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, ev)
}

func (p *plugin) RunPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RunPodSandbox " + pod.Name)
	if pod.Name == "bad" {
		return errors.New("induced failure")
	}
	return nil
}

func (p *plugin) CreateContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.record("CreateContainer " + c.Name + " in " + pod.Name)
	if c.Name == "bad" {
		return nil, nil, errors.New("induced failure")
	}
	adj := &api.ContainerAdjustment{}
	adj.AddEnv("INJECTED", "by-plugin")
	adj.AddMount(&api.Mount{Destination: "/injected", Source: "/tmp", Type: "bind", Options: []string{"rbind", "ro"}})
	adj.SetLinuxCPUSetCPUs("0")
	upd := &api.ContainerUpdate{ContainerId: "other"}
	upd.SetLinuxCPUSetCPUs("1")
	return adj, []*api.ContainerUpdate{upd}, nil
}

func (p *plugin) StopContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	p.record("StopContainer " + c.Name)
	return nil, nil
}

func TestPluginSeesEventsAndAdjustsSpecs(t *testing.T) {
	dir := t.TempDir()
	pod := &sandbox.Sandbox{Meta: objects.Meta{ID: "pod1"}, Spec: sandbox.Spec{Name: "web", Namespace: "ns", UID: "u1"}}
	existing := &container.Container{Meta: objects.Meta{ID: "ctr0"}, SandboxID: "pod1", State: container.StateRunning, Spec: container.Spec{Name: "old"}, Bundle: filepath.Join(dir, "none")}
	pods := &fakePods{pods: []*sandbox.Sandbox{pod}}
	ctrs := &fakeContainers{list: []*container.Container{existing}, applied: map[string]*specs.LinuxResources{}}
	sock := filepath.Join(dir, "nri.sock")
	n, err := New(Config{SocketPath: sock, PluginPath: filepath.Join(dir, "plugins"), PluginConfigPath: filepath.Join(dir, "conf"),
		RegistrationTimeout: 5 * time.Second, RequestTimeout: 2 * time.Second}, pods, ctrs, nil, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	defer n.Stop()

	p := &plugin{synced: make(chan struct{})}
	s, err := stub.New(p, stub.WithPluginName("test"), stub.WithPluginIdx("10"), stub.WithSocketPath(sock))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-p.synced:
	case err := <-done:
		t.Fatalf("plugin ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("plugin never synchronised")
	}
	if !slices.Contains(p.syncedCtrs, "ctr0") {
		t.Errorf("Synchronize got containers %v, want ctr0", p.syncedCtrs)
	}
	// The library adds the plugin to its list right after Synchronize.
	deadline := time.Now().Add(5 * time.Second)
	for n.Status().Plugins != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := n.Status(); st.Plugins != 1 || !slices.Contains(st.Names, "10-test") || st.Socket != sock {
		t.Errorf("status %+v", st)
	}

	if err := n.RunPodSandbox(ctx, pod); err != nil {
		t.Errorf("RunPodSandbox: %v", err)
	}
	bad := &sandbox.Sandbox{Meta: objects.Meta{ID: "pod2"}, Spec: sandbox.Spec{Name: "bad"}}
	if err := n.RunPodSandbox(ctx, bad); err == nil || !strings.Contains(err.Error(), "induced failure") {
		t.Errorf("failing RunPodSandbox: %v", err)
	}

	spec := &specs.Spec{Process: &specs.Process{Env: []string{"PATH=/bin"}}, Linux: &specs.Linux{}}
	c := &container.Container{Meta: objects.Meta{ID: "ctr1"}, SandboxID: "pod1", Spec: container.Spec{Name: "app"}, Bundle: filepath.Join(dir, "none")}
	if err := n.CreateContainer(ctx, c, spec); err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if !slices.Contains(spec.Process.Env, "INJECTED=by-plugin") || !slices.Contains(spec.Process.Env, "PATH=/bin") {
		t.Errorf("env %v", spec.Process.Env)
	}
	if len(spec.Mounts) != 1 || spec.Mounts[0].Destination != "/injected" {
		t.Errorf("mounts %+v", spec.Mounts)
	}
	if r := spec.Linux.Resources; r == nil || r.CPU == nil || r.CPU.Cpus != "0" {
		t.Errorf("resources %+v", r)
	}
	if r := ctrs.applied["other"]; r == nil || r.CPU == nil || r.CPU.Cpus != "1" {
		t.Errorf("update of the other container: %+v", r)
	}
	badCtr := &container.Container{Meta: objects.Meta{ID: "ctr2"}, SandboxID: "pod1", Spec: container.Spec{Name: "bad"}, Bundle: filepath.Join(dir, "none")}
	if err := n.CreateContainer(ctx, badCtr, &specs.Spec{}); err == nil || !strings.Contains(err.Error(), "induced failure") {
		t.Errorf("failing CreateContainer: %v", err)
	}
	// A failing plugin stays connected: the next request reaches it.
	n.StopContainer(ctx, c)
	p.mu.Lock()
	defer p.mu.Unlock()
	want := []string{"RunPodSandbox web", "RunPodSandbox bad", "CreateContainer app in web", "CreateContainer bad in web", "StopContainer app"}
	if !slices.Equal(p.events, want) {
		t.Errorf("events %q, want %q", p.events, want)
	}
}

// A live socket of another runtime is left alone.
func TestBusySocketIsNotTaken(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "nri.sock")
	other, err := New(Config{SocketPath: sock, PluginPath: filepath.Join(dir, "p"), PluginConfigPath: dir, RegistrationTimeout: time.Second, RequestTimeout: time.Second}, &fakePods{}, &fakeContainers{}, nil, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer other.Stop()
	n, err := New(Config{SocketPath: sock, PluginPath: filepath.Join(dir, "p"), PluginConfigPath: dir, RegistrationTimeout: time.Second, RequestTimeout: time.Second}, &fakePods{}, &fakeContainers{}, nil, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	if st := n.Status(); st.Socket != "" || !strings.Contains(st.SocketProblem, "another process") {
		t.Errorf("status %+v", st)
	}
}

// slowPlugin takes longer than the request timeout to answer.
type slowPlugin struct{ synced chan struct{} }

func (p *slowPlugin) Synchronize(context.Context, []*api.PodSandbox, []*api.Container) ([]*api.ContainerUpdate, error) {
	close(p.synced)
	return nil, nil
}

// CreateContainer ignores its context on purpose: ttrpc hands the
// plugin the runtime's deadline, and an answer sent right at it can
// still beat the runtime's own timer.
func (p *slowPlugin) CreateContainer(context.Context, *api.PodSandbox, *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	time.Sleep(time.Second)
	return nil, nil, nil
}

// A plugin that times out fails the request (the library alone would
// carry on without it) and is disconnected, so the retry works.
func TestPluginTimeoutFailsTheRequest(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "nri.sock")
	pods := &fakePods{pods: []*sandbox.Sandbox{{Meta: objects.Meta{ID: "pod1"}, Spec: sandbox.Spec{Name: "web"}}}}
	n, err := New(Config{SocketPath: sock, PluginPath: filepath.Join(dir, "p"), PluginConfigPath: dir, RegistrationTimeout: 5 * time.Second, RequestTimeout: 300 * time.Millisecond},
		pods, &fakeContainers{applied: map[string]*specs.LinuxResources{}}, nil, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	p := &slowPlugin{synced: make(chan struct{})}
	s, err := stub.New(p, stub.WithPluginName("slow"), stub.WithPluginIdx("20"), stub.WithSocketPath(sock))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-p.synced:
	case <-time.After(10 * time.Second):
		t.Fatal("plugin never synchronised")
	}
	for deadline := time.Now().Add(5 * time.Second); n.Status().Plugins != 1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	c := &container.Container{Meta: objects.Meta{ID: "ctr1"}, SandboxID: "pod1", Spec: container.Spec{Name: "app"}, Bundle: filepath.Join(dir, "none")}
	err = n.CreateContainer(ctx, c, &specs.Spec{})
	if err == nil || !strings.Contains(err.Error(), "20-slow did not answer CreateContainer") {
		t.Fatalf("CreateContainer with a plugin timing out: %v", err)
	}
	if err := n.CreateContainer(ctx, c, &specs.Spec{}); err != nil {
		t.Errorf("retry after the plugin was dropped: %v", err)
	}
	if st := n.Status(); st.Plugins != 0 || len(st.Names) != 0 {
		t.Errorf("status after the drop: %+v", st)
	}
}

// The startup synchronisation with no plugin to start builds nothing;
// every later one (a plugin connecting) gets the node's containers.
func TestStartupSyncWithoutPluginsBuildsNothing(t *testing.T) {
	dir := t.TempDir()
	if !noPluginFiles(dir) || !noPluginFiles(filepath.Join(dir, "missing")) {
		t.Fatal("an empty or missing plugin directory counts as holding plugins")
	}
	if err := os.WriteFile(filepath.Join(dir, "10-plugin"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if noPluginFiles(dir) {
		t.Fatal("a plugin directory with a file counts as empty")
	}
	ctrs := &fakeContainers{list: []*container.Container{{Meta: objects.Meta{ID: "c1"}, SandboxID: "p1"}}}
	n := &NRI{pods: &fakePods{}, containers: ctrs}
	var got [][]string
	cb := func(_ context.Context, _ []*api.PodSandbox, cs []*api.Container) ([]*api.ContainerUpdate, error) {
		var ids []string
		for _, c := range cs {
			ids = append(ids, c.Id)
		}
		got = append(got, ids)
		return nil, nil
	}
	n.noStartupPlugins.Store(true)
	for range 2 {
		if _, err := n.syncList(context.Background(), cb); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 2 || len(got[0]) != 0 || !slices.Equal(got[1], []string{"c1"}) {
		t.Errorf("synchronisations handed out %v, want none then c1", got)
	}
}
