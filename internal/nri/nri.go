// Package nri connects floe to NRI (Node Resource Interface) plugins
// through the containerd/nri adaptation library: it relays every pod and
// container lifecycle event to the plugins, synchronises a newly
// connected plugin with the pods and containers that exist, and applies
// what plugins ask for (spec adjustments of a container being created,
// resource updates and evictions of others). The sandbox and container
// cores call it through their Hooks interfaces; it knows nothing of CRI.
package nri

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	nri "github.com/containerd/nri/pkg/adaptation"
	nrilog "github.com/containerd/nri/pkg/log"
	"github.com/containerd/ttrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/sandbox"
	"github.com/floe-cri/floe/internal/version"
)

// Config is the [nri] table.
type Config struct {
	SocketPath          string // empty: no external plugins
	PluginPath          string
	PluginConfigPath    string
	RegistrationTimeout time.Duration
	RequestTimeout      time.Duration
}

// Pods is what NRI needs of the sandbox core.
type Pods interface {
	Get(idOrPrefix string) (*sandbox.Sandbox, error)
	List(f sandbox.Filter) []*sandbox.Sandbox
}

// Containers is what NRI needs of the container core.
type Containers interface {
	Get(idOrPrefix string) (*container.Container, error)
	List(f container.Filter) []*container.Container
	// ApplyResources sets the limits of a running container as a plugin
	// asked, without telling the plugins again.
	ApplyResources(ctx context.Context, id string, r *specs.LinuxResources) error
	Stop(ctx context.Context, idOrPrefix string, timeout time.Duration) error
}

// Devices injects CDI devices plugins ask for.
type Devices interface {
	Inject(s *specs.Spec, devices []string) error
}

// NRI is the running adaptation. A nil *NRI is valid and does nothing,
// which is what floe uses with [nri] enable = false.
type NRI struct {
	cfg        Config
	a          *nri.Adaptation
	pods       Pods
	containers Containers
	devices    Devices
	log        *slog.Logger

	// wg owns the goroutines that apply updates plugins return from
	// StopContainer (see applyLater); Stop waits for them.
	wg sync.WaitGroup

	// noStartupPlugins says the plugin directory holds nothing the
	// library could start: its startup synchronisation, which it always
	// runs, then has nobody to hand the node's pods and containers to,
	// and building them (a bundle spec read per container, ~40 ms of a
	// restart with 500) is skipped. Consumed by the first synchronize.
	noStartupPlugins atomic.Bool

	// relayMu makes one relay of a failable event at a time, so the
	// timeouts recorded meanwhile are that relay's (see relay).
	relayMu sync.Mutex

	// gate keeps the synchronisation of a joining plugin and the relay of
	// events apart (see sync.go).
	gate syncGate

	mu       sync.Mutex
	relayOp  string               // the event relay is relaying
	timeouts []string             // plugins that timed out relaying relayOp
	plugins  map[string]time.Time // name -> when it synchronised
	count    int                  // plugins the library holds
	socketOK bool
	problem  string // why the socket is not served, for status
	// claim is the lock file that makes this floe the socket's one
	// server among floes on the node (see claimSocket).
	claim *os.File
}

// New prepares the adaptation; Start begins serving plugins.
func New(cfg Config, pods Pods, containers Containers, devices Devices, log *slog.Logger) (*NRI, error) {
	n := &NRI{cfg: cfg, pods: pods, containers: containers, devices: devices, log: log.With("component", "nri"), plugins: map[string]time.Time{}}
	// The library's logger is process-wide and read by its goroutines
	// without a lock: it is set once, to the first adaptation's logger.
	setLibraryLog.Do(func() { nrilog.Set(&logAdapter{log: n.log}) })
	// The library keeps these process-wide; floe has one adaptation.
	nri.SetPluginRegistrationTimeout(cfg.RegistrationTimeout)
	nri.SetPluginRequestTimeout(cfg.RequestTimeout)
	opts := []nri.Option{
		nri.WithPluginPath(cfg.PluginPath),
		nri.WithPluginConfigPath(cfg.PluginConfigPath),
		nri.WithMetrics(&pluginTracker{n: n}),
	}
	if cfg.SocketPath == "" {
		opts = append(opts, nri.WithDisabledExternalConnections())
		n.problem = "no socket_path configured"
	} else if err := n.claimSocket(cfg.SocketPath); err != nil {
		n.log.Warn("NRI external plugins not accepted: another floe serves the socket; set nri.socket_path (or --nri-socket) to a path of this floe's own", "socket", cfg.SocketPath, "err", err)
		opts = append(opts, nri.WithDisabledExternalConnections())
		n.problem = err.Error()
	} else if err := socketTaken(cfg.SocketPath); err != nil {
		// The library removes whatever is at the path before listening:
		// a live socket of another runtime on the node must be left to it.
		n.log.Warn("NRI external plugins not accepted: the socket is served by another process; set nri.socket_path (or --nri-socket) to a path of floe's own", "socket", cfg.SocketPath, "err", err)
		opts = append(opts, nri.WithDisabledExternalConnections())
		n.problem = err.Error()
	} else {
		opts = append(opts, nri.WithSocketPath(cfg.SocketPath))
		n.socketOK = true
	}
	a, err := nri.New("floe", version.Version, n.synchronize, n.updateFromPlugin, opts...)
	if err != nil {
		if n.claim != nil {
			n.claim.Close()
		}
		return nil, fmt.Errorf("set up NRI: %w", err)
	}
	n.a = a
	return n, nil
}

// claimSocket takes a lock beside the socket, held while floe runs: two
// floes starting at once would both find no live socket and both listen,
// and the second would remove the first one's socket or fail to bind.
func (n *NRI) claimSocket(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create the socket's directory: %w", err)
	}
	f, err := os.OpenFile(path+".floe-lock", os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("open the socket's lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("socket %s is served by another process (a floe holds its lock): %w", path, err)
	}
	n.claim = f
	return nil
}

// socketTaken reports a socket another live process answers on.
func socketTaken(path string) error {
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil // stale: left by a crash, safe to replace
	}
	c.Close()
	return fmt.Errorf("socket %s is served by another process", path)
}

// Start launches the pre-installed plugins and starts accepting external
// ones. Call after the cores have restored their state, since a
// connecting plugin is synchronised with it.
func (n *NRI) Start() error {
	if n == nil {
		return nil
	}
	// The library synchronises its pre-installed plugins once, in Start,
	// before it listens for others: that is the first synchronize.
	n.noStartupPlugins.Store(noPluginFiles(n.cfg.PluginPath))
	err := n.a.Start()
	n.noStartupPlugins.Store(false)
	if err != nil {
		return fmt.Errorf("start NRI: %w", err)
	}
	n.log.Info("NRI started", "socket", n.socketShown(), "pluginPath", n.cfg.PluginPath)
	return nil
}

// noPluginFiles reports a plugin directory that is missing or holds no
// files (the library starts only regular executables there).
func noPluginFiles(dir string) bool {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	for _, e := range entries {
		if !e.IsDir() {
			return false
		}
	}
	return true
}

// Stop disconnects every plugin (stopping the ones floe started) and
// waits for updates still being applied.
func (n *NRI) Stop() {
	if n == nil {
		return
	}
	n.a.Stop()
	n.wg.Wait()
	if n.socketOK {
		os.Remove(n.cfg.SocketPath)
	}
	if n.claim != nil {
		n.claim.Close()
	}
}

func (n *NRI) socketShown() string {
	if n.socketOK {
		return n.cfg.SocketPath
	}
	return ""
}

// Status is what `floe status` and /info show.
type Status struct {
	Enabled bool   `json:"enabled"`
	Socket  string `json:"socket,omitempty"`
	// SocketProblem says why external plugins cannot connect.
	SocketProblem string `json:"socketProblem,omitempty"`
	PluginPath    string `json:"pluginPath,omitempty"`
	// Plugins is how many plugins are connected; Names those that
	// synchronised, by index-name (a plugin that left is dropped once
	// the library notices).
	Plugins int      `json:"plugins"`
	Names   []string `json:"names,omitempty"`
}

// Status reports the socket and the plugins.
func (n *NRI) Status() Status {
	if n == nil {
		return Status{}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	st := Status{Enabled: true, Socket: n.socketShown(), SocketProblem: n.problem, PluginPath: n.cfg.PluginPath, Plugins: n.count}
	for name := range n.plugins {
		st.Names = append(st.Names, name)
	}
	sort.Strings(st.Names)
	return st
}

// pluginTracker learns which plugins are connected from the library's
// metrics callbacks, the only place it names them.
type pluginTracker struct{ n *NRI }

func (t *pluginTracker) RecordPluginInvocation(name, op string, err error) {
	t.n.mu.Lock()
	defer t.n.mu.Unlock()
	if op == "Synchronize" && err == nil {
		t.n.plugins[name] = time.Now()
		return
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ttrpc.ErrClosed) {
		return // a plugin's own error: it stays connected
	}
	// The library drops a plugin that times out or whose connection
	// closed.
	delete(t.n.plugins, name)
	if errors.Is(err, context.DeadlineExceeded) && op == t.n.relayOp {
		// Unless the plugin's own failure policy says otherwise the
		// library then carries on without it; floe fails the request
		// instead (see relay).
		t.n.timeouts = append(t.n.timeouts, fmt.Sprintf("plugin %s did not answer %s within %s", name, op, t.n.cfg.RequestTimeout))
	}
}

func (t *pluginTracker) RecordPluginLatency(string, string, time.Duration) {}
func (t *pluginTracker) RecordPluginAdjustments(string, string, *nri.ContainerAdjustment, int, int) {
}

func (t *pluginTracker) UpdatePluginCount(count int) {
	t.n.mu.Lock()
	defer t.n.mu.Unlock()
	t.n.count = count
	if count == 0 {
		clear(t.n.plugins)
	}
}

// relay runs one relay of an event whose failure fails the request, and
// fails it also when a plugin timed out: a container must not be made
// without the adjustment a plugin would have asked for. The library
// relays one event at a time anyway, so relayMu costs no concurrency.
func (n *NRI) relay(op string, call func() error) error {
	n.relayMu.Lock()
	defer n.relayMu.Unlock()
	defer n.shared()()
	n.mu.Lock()
	n.relayOp, n.timeouts = op, nil
	n.mu.Unlock()
	err := call()
	n.mu.Lock()
	timeouts := n.timeouts
	n.relayOp, n.timeouts = "", nil
	n.mu.Unlock()
	if err == nil && len(timeouts) > 0 {
		err = errors.New(strings.Join(timeouts, "; ") + "; it was disconnected")
	}
	return err
}

var setLibraryLog sync.Once

// logAdapter sends the library's log to floe's.
type logAdapter struct{ log *slog.Logger }

func (l *logAdapter) Debugf(_ context.Context, f string, a ...any) { l.log.Debug(fmt.Sprintf(f, a...)) }
func (l *logAdapter) Infof(_ context.Context, f string, a ...any)  { l.log.Info(fmt.Sprintf(f, a...)) }
func (l *logAdapter) Warnf(_ context.Context, f string, a ...any)  { l.log.Warn(fmt.Sprintf(f, a...)) }
func (l *logAdapter) Errorf(_ context.Context, f string, a ...any) { l.log.Error(fmt.Sprintf(f, a...)) }
