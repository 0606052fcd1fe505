package nri

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/objects"
	"github.com/floe-cri/floe/internal/sandbox"
)

// joiningPlugin holds its Synchronize open until released, the way a
// plugin reconciling a busy node is slow, and records what it learns.
type joiningPlugin struct {
	inSync  chan struct{}
	release chan struct{}

	mu      sync.Mutex
	synced  []string
	events  []string
	podRes  *api.LinuxResources
	podOver *api.LinuxResources
}

// Synchronize ignores its context on purpose: it answers when released,
// as critest's plugin does, whatever deadline the runtime set.
func (p *joiningPlugin) Synchronize(_ context.Context, _ []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	p.mu.Lock()
	for _, c := range ctrs {
		p.synced = append(p.synced, c.Id)
	}
	p.mu.Unlock()
	close(p.inSync)
	<-p.release
	return nil, nil
}

func (p *joiningPlugin) record(ev string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, ev)
}

func (p *joiningPlugin) CreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.record("CreateContainer " + c.Id)
	return nil, nil, nil
}

func (p *joiningPlugin) RemoveContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("RemoveContainer " + c.Id)
	return nil
}

func (p *joiningPlugin) UpdatePodSandbox(_ context.Context, pod *api.PodSandbox, over, res *api.LinuxResources) error {
	p.record("UpdatePodSandbox " + pod.Id)
	if pod.Name == "bad" {
		return errors.New("refused")
	}
	p.mu.Lock()
	p.podOver, p.podRes = over, res
	p.mu.Unlock()
	return nil
}

func (p *joiningPlugin) PostUpdatePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("PostUpdatePodSandbox " + pod.Id)
	return nil
}

// knows reports a container the plugin learned of in its Synchronize or
// through its creation event.
func (p *joiningPlugin) knows(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.synced, id) || slices.Contains(p.events, "CreateContainer "+id)
}

func (p *joiningPlugin) saw(ev string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.events, ev)
}

// startNRI serves an adaptation with a 300 ms request timeout on a socket
// of the test's own.
func startNRI(t *testing.T, pods Pods, ctrs Containers) (*NRI, string) {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "nri.sock")
	n, err := New(Config{SocketPath: sock, PluginPath: filepath.Join(dir, "p"), PluginConfigPath: dir,
		RegistrationTimeout: 5 * time.Second, RequestTimeout: 300 * time.Millisecond}, pods, ctrs, nil, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return n, sock
}

// connect runs p as plugin idx-name until the test ends.
func connect(t *testing.T, sock, name string, p any) {
	t.Helper()
	s, err := stub.New(p, stub.WithPluginName(name), stub.WithPluginIdx("10"), stub.WithSocketPath(sock))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// A plugin whose Synchronize takes longer than request_timeout (but not
// registration_timeout) while containers are created and removed: it
// stays connected, learns of every container created meanwhile (from
// the list or the creation event) and hears of the removal of one its
// list held. Before, the library dropped it at request_timeout and every
// container created from then on was lost to it (critest's "NRI plugin
// synchronization ... without the race condition during initialization"
// with the default 2 s timeout), and the removal was relayed before it
// joined, leaving it a container that no longer existed.
func TestJoiningPluginLosesNoContainer(t *testing.T) {
	pod := &sandbox.Sandbox{Meta: objects.Meta{ID: "pod1"}, Spec: sandbox.Spec{Name: "web"}}
	old := &container.Container{Meta: objects.Meta{ID: "ctr-old"}, SandboxID: "pod1", State: container.StateExited, Bundle: "/nonexistent"}
	n, sock := startNRI(t, &fakePods{pods: []*sandbox.Sandbox{pod}}, &fakeContainers{list: []*container.Container{old}, applied: map[string]*specs.LinuxResources{}})
	p := &joiningPlugin{inSync: make(chan struct{}), release: make(chan struct{})}
	connect(t, sock, "joining", p)
	select {
	case <-p.inSync:
	case <-time.After(10 * time.Second):
		t.Fatal("plugin never synchronised")
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 5 {
		wg.Go(func() {
			// What the container core does around a creation.
			unblock := n.BlockSync()
			defer unblock()
			c := &container.Container{Meta: objects.Meta{ID: fmt.Sprintf("ctr%d", i)}, SandboxID: "pod1", Bundle: "/nonexistent"}
			if err := n.CreateContainer(ctx, c, &specs.Spec{Process: &specs.Process{}}); err != nil {
				errs <- fmt.Errorf("create %s: %w", c.ID, err)
			}
		})
	}
	wg.Go(func() { n.RemoveContainer(ctx, old) })
	// Past the request timeout: the plugin is still synchronising.
	time.Sleep(time.Second)
	close(p.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range 5 {
		if id := fmt.Sprintf("ctr%d", i); !p.knows(id) {
			t.Errorf("plugin never learned of %s", id)
		}
	}
	p.mu.Lock()
	synced, events := slices.Clone(p.synced), slices.Clone(p.events)
	p.mu.Unlock()
	if !slices.Contains(synced, "ctr-old") || !slices.Contains(events, "RemoveContainer ctr-old") {
		t.Errorf("plugin synced %v and saw %v: it must hear of the removal of ctr-old, which its list held", synced, events)
	}
	if st := n.Status(); st.Plugins != 1 {
		t.Errorf("plugin dropped after a slow Synchronize: %+v", st)
	}
}

// UpdatePodSandboxResources reaches plugins: UpdatePodSandbox with the
// pod's overhead and resources, which a plugin may refuse, then
// PostUpdatePodSandbox.
func TestUpdatePodSandboxReachesPlugins(t *testing.T) {
	good := &sandbox.Sandbox{Meta: objects.Meta{ID: "pod1"}, Spec: sandbox.Spec{Name: "web"}}
	bad := &sandbox.Sandbox{Meta: objects.Meta{ID: "pod2"}, Spec: sandbox.Spec{Name: "bad"}}
	n, sock := startNRI(t, &fakePods{pods: []*sandbox.Sandbox{good, bad}}, &fakeContainers{applied: map[string]*specs.LinuxResources{}})
	p := &joiningPlugin{inSync: make(chan struct{}), release: make(chan struct{})}
	close(p.release)
	connect(t, sock, "pods", p)
	<-p.inSync
	for deadline := time.Now().Add(5 * time.Second); n.Status().Plugins != 1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	ctx := context.Background()
	limit, shares := int64(256<<20), uint64(512)
	res := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}, CPU: &specs.LinuxCPU{Shares: &shares}}
	over := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(16 << 20))}}
	if err := n.UpdatePodSandbox(ctx, good, over, res); err != nil {
		t.Fatal(err)
	}
	n.PostUpdatePodSandbox(ctx, good)
	p.mu.Lock()
	gotLimit, gotShares, gotOver := p.podRes.GetMemory().GetLimit().GetValue(), p.podRes.GetCpu().GetShares().GetValue(), p.podOver.GetMemory().GetLimit().GetValue()
	p.mu.Unlock()
	if gotLimit != limit || gotShares != shares || gotOver != 16<<20 {
		t.Errorf("plugin got memory %d, shares %d, overhead memory %d", gotLimit, gotShares, gotOver)
	}
	if !p.saw("UpdatePodSandbox pod1") || !p.saw("PostUpdatePodSandbox pod1") {
		t.Errorf("events %v", p.events)
	}
	if err := n.UpdatePodSandbox(ctx, bad, nil, res); err == nil {
		t.Error("a plugin's refusal did not fail UpdatePodSandbox")
	}
}

func ptr[T any](v T) *T { return &v }

// The gate lets relays through together, keeps them out while closed,
// waits for those in flight before it closes, and may be closed again
// before it reopened (the next plugin's synchronisation).
func TestSyncGate(t *testing.T) {
	var g syncGate
	g.enter()
	g.enter()
	closed := make(chan struct{})
	go func() { g.close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("the gate closed with relays in flight")
	case <-time.After(50 * time.Millisecond):
	}
	g.leave()
	g.leave()
	<-closed
	g.close() // a second synchronisation before the first reopened
	entered := make(chan struct{})
	go func() { g.enter(); close(entered) }()
	g.open()
	select {
	case <-entered:
		t.Fatal("a relay passed a gate one synchronisation still holds closed")
	case <-time.After(50 * time.Millisecond):
	}
	g.open()
	<-entered
	g.leave()
}
