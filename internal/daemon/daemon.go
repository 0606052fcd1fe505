// Package daemon wires floe's services together for `floe serve`: it takes
// the state lock, opens the database, restores state, serves the CRI socket
// and shuts down cleanly on SIGTERM/SIGINT, leaving pods running.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/floe-cri/floe/internal/cdi"
	"github.com/floe-cri/floe/internal/cgroups"
	"github.com/floe-cri/floe/internal/checkpoint"
	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/diagnose"
	"github.com/floe-cri/floe/internal/handlerprobe"
	"github.com/floe-cri/floe/internal/images"
	"github.com/floe-cri/floe/internal/inspect"
	"github.com/floe-cri/floe/internal/logging"
	"github.com/floe-cri/floe/internal/lsm"
	"github.com/floe-cri/floe/internal/metrics"
	"github.com/floe-cri/floe/internal/monitor"
	"github.com/floe-cri/floe/internal/network"
	"github.com/floe-cri/floe/internal/nri"
	"github.com/floe-cri/floe/internal/ocifeatures"
	"github.com/floe-cri/floe/internal/ocispec"
	"github.com/floe-cri/floe/internal/podinit"
	"github.com/floe-cri/floe/internal/podsandbox"
	"github.com/floe-cri/floe/internal/procmem"
	"github.com/floe-cri/floe/internal/sandbox"
	"github.com/floe-cri/floe/internal/server"
	"github.com/floe-cri/floe/internal/statelock"
	"github.com/floe-cri/floe/internal/stats"
	"github.com/floe-cri/floe/internal/store"
	"github.com/floe-cri/floe/internal/streaming"
	"github.com/floe-cri/floe/internal/tracing"
	"github.com/floe-cri/floe/internal/unixsock"
	"github.com/floe-cri/floe/internal/userns"
	"github.com/floe-cri/floe/internal/version"
)

// DropInDir is where drop-ins for a configuration file live: floe.d beside
// it, so /etc/floe/floe.toml reads /etc/floe/floe.d/*.toml.
func DropInDir(configFile string) string {
	return filepath.Join(filepath.Dir(configFile), "floe.d")
}

// shutdownTimeout bounds how long in-flight RPCs may run after SIGTERM.
const shutdownTimeout = 30 * time.Second

// Reloader re-reads the configuration (files and the original flags) on
// SIGHUP.
type Reloader func() (*config.Config, error)

// Run serves until SIGTERM or SIGINT: it assembles the services, then
// serves them.
func Run(cfg *config.Config, reload Reloader) error {
	s := &services{cfg: cfg}
	// Every step of assemble registers how to undo what it set up; they
	// run in reverse order however Run ends, after the server stopped.
	defer s.close()
	if err := s.assemble(); err != nil {
		return err
	}
	return s.serve(reload)
}

// services are what `floe serve` runs, in the order assemble sets them up.
type services struct {
	cfg   *config.Config
	log   *slog.Logger
	level *slog.LevelVar

	lock     *statelock.Lock
	tracing  *tracing.Tracing
	listener net.Listener
	db       *store.DB

	net      *network.Manager
	cg       *cgroups.Support
	defaults *containerDefaults

	probes     *handlerprobe.Registry
	probeCtx   context.Context
	ckpt       checkpoint.Support
	lsms       lsm.Host
	mets       *metrics.Metrics
	sandboxes  *sandbox.Manager
	imgs       *images.Service
	devices    *cdi.Registry
	containers *container.Manager
	plugins    *nri.NRI

	metricsAddr   func() string
	stream        *streaming.Server
	usernsSupport userns.Support
	subIDs        *userns.Allocator
	srv           *server.Server

	// closers undo the steps done so far; close runs them last first.
	closers []func()
}

// onClose registers an undo step, as a defer in one long Run would.
func (s *services) onClose(f func()) { s.closers = append(s.closers, f) }

// close undoes every step done, in reverse order.
func (s *services) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// assemble sets every service up in dependency order; the first failure
// stops it (close undoes what was done).
func (s *services) assemble() error {
	for _, step := range []func() error{
		s.setupLogging,
		s.claimState,
		s.detectHost,
		s.runStartupChecks,
		s.setupSandboxes,
		s.setupImages,
		s.setupContainers,
		s.startNRI,
		s.setupMetrics,
		s.setupStreaming,
		s.setupInspect,
		s.setupServer,
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func (s *services) setupLogging() error {
	log, level, err := logging.New(os.Stderr, s.cfg.LogLevel, s.cfg.LogFormat)
	if err != nil {
		return err
	}
	s.log, s.level = log, level
	return nil
}

// claimState takes the state lock, the run dir, the CRI socket and the
// database, in that order.
func (s *services) claimState() error {
	cfg := s.cfg
	lock, err := statelock.Acquire(cfg.StateDir)
	if err != nil {
		return err
	}
	s.lock = lock
	s.onClose(func() { lock.Release() })
	// Set up first and shut down last: the spans of the last calls are
	// flushed after the server stopped.
	tr, err := startTracing(cfg, s.log)
	if err != nil {
		return err
	}
	s.tracing = tr
	s.onClose(func() { stopTracing(tr, s.log) })
	if err := os.MkdirAll(cfg.RunDir, 0o711); err != nil {
		return fmt.Errorf("create run dir %s: %w", cfg.RunDir, err)
	}
	// Claim the CRI socket early: a daemon that would collide with another
	// on it must fail before it touches anything else.
	l, err := unixsock.Listen(cfg.Socket, 0o660)
	if err != nil {
		return err
	}
	s.listener = l
	s.onClose(func() { l.Close() })
	db, err := store.Open(filepath.Join(cfg.StateDir, "floe.db"))
	if err != nil {
		return err
	}
	s.db = db
	s.onClose(func() { db.Close() })
	return nil
}

// detectHost sets up the CNI manager and reads what the cgroup hierarchy
// can hold and the [containers] defaults that depend on it.
func (s *services) detectHost() error {
	cfg := s.cfg
	s.net = network.New(cfg.Network.CNIConfigDir, cfg.Network.CNIPluginDirs, filepath.Join(cfg.StateDir, "cni-cache"))
	// What the cgroup hierarchy runc uses can hold decides which limits
	// reach the runtime spec (see ocispec.LinuxResources).
	cg, err := cgroups.Detect(cgroups.HostPaths)
	if err != nil {
		return err
	}
	s.cg = cg
	defaults, err := newContainerDefaults(cfg, cg, s.log)
	if err != nil {
		return err
	}
	s.defaults = defaults
	return nil
}

// runStartupChecks starts the handler probes, prints the startup check
// block and fails on a fatal finding.
func (s *services) runStartupChecks() error {
	cfg := s.cfg
	probes := newProbes(cfg, s.log)
	s.probes = probes
	// Probes run in the background so that no handler's probe holds up
	// floe or another handler's pods (gVisor's takes ~2 s); the startup
	// checks wait a moment for the quick ones (runc, crun).
	probeCtx, stopProbes := context.WithCancel(context.Background())
	s.probeCtx = probeCtx
	s.onClose(probes.Wait)
	s.onClose(stopProbes)
	select {
	case <-probes.Start(probeCtx):
	case <-time.After(startupProbeWait):
	}
	probeResults := probes.Results()
	s.ckpt = checkpoint.Detect(context.Background(), cfg.Checkpoint.CRIUPath)
	s.lsms = lsm.Detect()
	findings := append(diagnose.Run(context.Background(), cfg, s.net, s.cg, diagnose.DefaultHost, probeResults), diagnose.Checkpoint(s.ckpt), diagnose.LSM(s.lsms, cfg.AppArmor.DefaultProfile))
	fmt.Fprint(os.Stderr, diagnose.Format(findings))
	return diagnose.FatalError(findings)
}

// setupSandboxes creates the metrics registry (CNI operations are
// observed from here on) and the sandbox core, and restores its pods.
func (s *services) setupSandboxes() error {
	cfg := s.cfg
	s.mets = metrics.New()
	s.net.OnOperation(s.mets.ObserveCNI)
	handlers := make([]string, 0, len(cfg.Runtimes))
	for name := range cfg.Runtimes {
		handlers = append(handlers, name)
	}
	sandboxes := sandbox.New(sandbox.Options{
		DB:             s.db,
		Network:        s.net,
		NetnsDir:       cfg.Network.NetnsDir,
		RunDir:         cfg.RunDir,
		ShmSize:        int64(cfg.Sandbox.ShmSize),
		AbandonedGrace: cfg.Sandbox.AbandonedGrace.Std(),
		CreateTimeout:  cfg.Sandbox.CreateTimeout.Std(),
		Handlers:       handlers,
		DefaultHandler: cfg.DefaultRuntime,
		HostResolvConf: "/etc/resolv.conf",
		CgroupDriver:   cfg.CgroupManager,
		Cgroups:        s.cg,
		PodInit:        podInitPrograms(s.log),
		PodRuntimes:    podRuntimes(cfg, s.log),
		Log:            s.log,
	})
	s.sandboxes = sandboxes
	s.onClose(sandboxes.Close)
	restoreCtx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	err := sandboxes.Restore(restoreCtx)
	cancel()
	return err
}

func (s *services) setupImages() error {
	cfg := s.cfg
	imgs, err := images.New(images.Options{
		StorageRoot:             cfg.Storage.Root,
		StorageRunRoot:          cfg.Storage.RunRoot,
		Driver:                  cfg.Storage.Driver,
		MountOptions:            cfg.Storage.MountOptions,
		RegistriesConf:          cfg.Registries.ConfigPath,
		RegistriesConfDir:       cfg.Registries.ConfigDir,
		RegistriesOverride:      cfg.Registries.OverridePath,
		DefaultSearchRegistries: cfg.Registries.DefaultSearchRegistries,
		AuthFile:                cfg.Images.AuthFile,
		SignaturePolicy:         cfg.Images.SignaturePolicy,
		PullProgressTimeout:     cfg.Images.PullProgressTimeout.Std(),
		Pinned:                  cfg.Images.Pinned,
		StateDir:                cfg.StateDir,
		RunDir:                  cfg.RunDir,
		UserAgent:               "floe/" + version.Version,
		Log:                     s.log,
	})
	if err != nil {
		return err
	}
	s.imgs = imgs
	// Registered before the server starts, so it runs after the server
	// has stopped: no RPC uses the store while it shuts down.
	s.onClose(func() {
		if err := imgs.Close(); err != nil {
			s.log.Error("image store shutdown", "err", err)
		}
	})
	return nil
}

// setupContainers sets up CDI, the container core and NRI, and restores
// the containers.
func (s *services) setupContainers() error {
	cfg := s.cfg
	devices, err := cdi.New(cfg.CDI.SpecDirs)
	if err != nil {
		return err
	}
	s.devices = devices
	containers, closeMonitors := startContainers(cfg, s.db, s.imgs, s.sandboxes, s.cg, s.defaults, s.mets, devices, s.log)
	s.containers = containers
	s.onClose(closeMonitors)
	// The hooks are in place before the containers' exit watchers start
	// (Restore); plugins are served once the state is restored.
	plugins, err := newNRI(cfg, s.sandboxes, containers, devices, s.log)
	if err != nil {
		return err
	}
	s.plugins = plugins
	if containers == nil {
		return nil
	}
	s.onClose(containers.Close)
	s.sandboxes.SetContainers(containers)
	restoreCtx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	err = containers.Restore(restoreCtx)
	cancel()
	return err
}

// startNRI serves the NRI plugins, once the state is restored.
func (s *services) startNRI() error {
	if err := s.plugins.Start(); err != nil {
		return err
	}
	s.onClose(s.plugins.Stop)
	return nil
}

// setupMetrics registers the state gauges and serves metrics when
// metrics.address is set.
func (s *services) setupMetrics() error {
	cfg, log := s.cfg, s.log
	if containers := s.containers; containers != nil {
		s.mets.RegisterStates("containers", "Containers by state.", func() map[string]int {
			counts := map[string]int{}
			for _, st := range []container.State{container.StateCreated, container.StateRunning, container.StateExited} {
				counts[string(st)] = 0
			}
			for _, c := range containers.List(container.Filter{}) {
				counts[string(c.State)]++
			}
			return counts
		})
	}
	s.mets.RegisterStates("pod_sandboxes", "Pod sandboxes by state.", func() map[string]int {
		counts := map[string]int{string(sandbox.StateReady): 0, string(sandbox.StateNotReady): 0}
		for _, sb := range s.sandboxes.List(sandbox.Filter{}) {
			counts[string(sb.State)]++
		}
		return counts
	})
	s.metricsAddr = func() string { return "" }
	if cfg.Metrics.Address == "" {
		return nil
	}
	ms, err := metrics.Serve(s.mets, cfg.Metrics.Address, log)
	switch {
	case err != nil && errors.Is(err, syscall.EADDRINUSE) && !cfg.MetricsAddressSet:
		// The default port belongs to whichever floe came first; a
		// second daemon on the node keeps running without metrics
		// rather than failing over an address nobody asked for.
		log.Warn("metrics not served: the default address is in use (another floe?); set metrics.address or --metrics-address to serve them", "address", cfg.Metrics.Address, "err", err)
		msg := "not served: " + cfg.Metrics.Address + " in use; set metrics.address"
		s.metricsAddr = func() string { return msg }
	case err != nil:
		return err
	default:
		s.onClose(ms.Close)
		s.metricsAddr = ms.Addr
		log.Info("serving metrics", "address", ms.Addr())
	}
	return nil
}

// setupStreaming serves the URLs Exec, Attach and PortForward return.
func (s *services) setupStreaming() error {
	cfg := s.cfg
	// A nil *Streams must stay a nil interface: exec and attach are then
	// refused with a reason.
	var execAttach streaming.Containers
	if s.containers != nil {
		execAttach = s.containers.Streams()
	}
	stream, err := streaming.Start(streaming.Options{
		Address:     cfg.Streaming.Address,
		TLSCertFile: cfg.Streaming.TLSCertFile,
		TLSKeyFile:  cfg.Streaming.TLSKeyFile,
		PodNetns:    server.PodNetns(s.sandboxes),
		Containers:  execAttach,
		Log:         s.log,
	})
	if err != nil {
		return err
	}
	s.stream = stream
	s.onClose(stream.Close)
	return nil
}

// setupInspect probes user namespace support, loads the subordinate ids
// and serves the inspect socket.
func (s *services) setupInspect() error {
	cfg := s.cfg
	s.usernsSupport = userns.Probe(cfg.RunDir, s.imgs.SupportsIDMappedLayers)
	s.subIDs = loadSubIDs(cfg.UserNamespaces, s.log)
	insp, err := inspect.Serve(cfg.InspectSocketPath(), inspect.Handler(inspect.Sources{
		Config: cfg, Sandboxes: s.sandboxes, Containers: s.containers, Images: s.imgs, Network: s.net, Cgroups: s.cg, Userns: &s.usernsSupport, SubIDs: s.subIDs, Probes: s.probes, MetricsAddress: s.metricsAddr, StreamingAddr: s.stream.Addr,
		LSM: &s.lsms, NRI: s.plugins, CDI: s.devices, Log: s.log,
	}), s.log)
	if err != nil {
		return err
	}
	s.onClose(insp.Close)
	path := cfg.InspectSocketPath()
	s.onClose(func() { os.Remove(path) })
	return nil
}

// setupServer probes the handlers' features and builds the CRI server.
func (s *services) setupServer() error {
	cfg, log := s.cfg, s.log
	handlerFeatures := map[string]ocifeatures.Features{}
	for name, rt := range cfg.Runtimes {
		f, err := ocifeatures.Probe(context.Background(), rt.RuntimePath)
		if err != nil {
			log.Warn("runtime handler features unknown; reporting none", "handler", name, "err", err)
		}
		handlerFeatures[name] = f
	}
	enableUserns(handlerFeatures, s.usernsSupport, log)
	s.srv = server.New(server.Deps{Config: cfg, Cgroups: s.cg, Sandboxes: s.sandboxes, Containers: s.containers, Network: s.net, Images: s.imgs, Metrics: s.mets, Streaming: s.stream,
		HandlerFeatures: handlerFeatures, Userns: s.usernsSupport, LSM: s.lsms, SubIDs: s.subIDs, Probes: s.probes, Checkpoint: &s.ckpt, Stats: stats.NewReader("/sys/fs/cgroup"), ServerOptions: s.serverOptions(), Log: log})
	return nil
}

// serverOptions are the gRPC server options the daemon adds to those
// server.New sets itself (interceptors, message sizes): the place for
// process-wide concerns such as tracing's stats handler.
func (s *services) serverOptions() []grpc.ServerOption {
	return s.tracing.ServerOptions()
}

// serve runs the CRI server until SIGTERM or SIGINT (SIGHUP reloads),
// then stops it; the caller's close undoes the rest.
func (s *services) serve(reload Reloader) error {
	cfg, log := s.cfg, s.log
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.srv.Serve(s.listener) }()
	log.Info("floe serving", "version", version.Version, "socket", cfg.Socket, "inspectSocket", cfg.InspectSocketPath(),
		"stateDir", cfg.StateDir, "runDir", cfg.RunDir, "cgroupManager", cfg.CgroupManager)
	releaseStartupMemory(log)

	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				s.onSIGHUP(reload)
				continue
			}
			log.Info("shutting down; pods and containers keep running", "signal", sig.String())
			s.srv.Shutdown(shutdownTimeout)
			<-serveErr
			os.Remove(cfg.Socket)
			return nil
		case err := <-serveErr:
			if err != nil {
				return fmt.Errorf("serve CRI: %w", err)
			}
			return nil
		}
	}
}

// onSIGHUP reloads what can change while running.
func (s *services) onSIGHUP(reload Reloader) {
	reloadConfig(s.log, s.level, reload, s.imgs, s.defaults)
	// The host may have changed (a runtime installed or upgraded, a
	// cgroup mounted): try every handler again.
	s.probes.Start(s.probeCtx)
	if err := s.subIDs.Load(); err != nil {
		s.log.Info("SIGHUP: automatic pod user namespaces (userns-mode=auto) unavailable", "reason", err)
	}
}

// releaseStartupMemory gives back what only startup (checks, probes,
// restore) used of the binary and the heap. Measured (bench
// IdleRSSVsContainerd): 43 MB VmRSS before, 32 MB after, once clients
// have made their first calls; code that serves calls later is mapped
// back as it runs.
func releaseStartupMemory(log *slog.Logger) {
	if r, err := procmem.ReleaseStartupPages(); err != nil {
		log.Warn("cannot release startup memory", "err", err)
	} else {
		log.Debug("released startup memory", "executableKB", r.ExecutableKB, "mappings", r.Mappings)
	}
}

// podInitName is the small pod init launcher floe looks for beside
// itself, podReaperName the static C init it launches.
const (
	podInitName   = "floe-pod-init"
	podReaperName = "floe-pod-reaper"
)

// besideFloe returns the executable name next to the floe binary, or "".
func besideFloe(name string, log *slog.Logger) string {
	exe, err := os.Executable()
	if err != nil {
		log.Warn("cannot locate the floe binary", "looking for", name, "err", err)
		return ""
	}
	path := filepath.Join(filepath.Dir(exe), name)
	if st, err := os.Stat(path); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return ""
	}
	return path
}

// podInitExe returns the floe-pod-init installed next to the floe binary,
// or "".
func podInitExe(log *slog.Logger) string {
	return besideFloe(podInitName, log)
}

// podInitPrograms returns the launcher and init of pods that share a PID
// namespace: those installed next to floe, each missing one replaced by
// floe itself (which costs its whole binary's memory in every such pod
// when it is the init, and tens of milliseconds per pod start when it is
// the launcher).
func podInitPrograms(log *slog.Logger) podinit.Programs {
	p := podinit.Programs{Launcher: podInitExe(log), Init: besideFloe(podReaperName, log)}
	if p.Launcher == "" {
		log.Info("no " + podInitName + " beside floe; floe launches pod inits itself (slower pod start)")
	}
	if p.Init == "" {
		log.Info("no " + podReaperName + " beside floe; pod inits run as Go programs (more memory in every pod that shares its PID namespace)")
	}
	log.Debug("pod init programs", "launcher", p.Launcher, "init", p.Init)
	return p
}

// startupProbeWait is how long the startup checks wait for the handlers'
// probes: enough for runc and crun (tens of milliseconds); a slower one
// is shown as under way, and its result is logged when it comes.
const startupProbeWait = 500 * time.Millisecond

// shimBinary is what conmon runs a sandboxed runtime through
// (internal/podinit/runtimeshim.go): the small floe-pod-init, or floe.
func shimBinary(log *slog.Logger) string {
	if bin := podInitExe(log); bin != "" {
		return bin
	}
	exe, err := os.Executable()
	if err != nil {
		log.Warn("cannot locate the floe binary for the runtime shim", "err", err)
	}
	return exe
}

// podRuntimes returns the pod sandbox keeper of every sandboxed handler.
func podRuntimes(cfg *config.Config, log *slog.Logger) map[string]sandbox.PodRuntime {
	out := map[string]sandbox.PodRuntime{}
	for name, rt := range cfg.Runtimes {
		if !rt.Sandboxed() {
			continue
		}
		out[name] = podsandbox.New(podsandbox.Options{
			Handler: name, RuntimePath: rt.RuntimePath, RuntimeRoot: rt.RuntimeRoot, RuntimeArgs: rt.RuntimeArgs,
			SystemdCgroup: cfg.CgroupManager == "systemd", CgroupDriver: cfg.CgroupManager,
			// Only the static floe-pod-init runs in the pause
			// container's empty root (floe links libc).
			PauseBinary: podInitExe(log), Log: log.With("handler", name),
		})
	}
	return out
}

func sandboxedHandlers(cfg *config.Config) map[string]bool {
	out := map[string]bool{}
	for name, rt := range cfg.Runtimes {
		out[name] = rt.Sandboxed()
	}
	return out
}

// newProbes returns the trial-container prober of every configured
// handler. Its work dir is under the run dir (tmpfs, floe's own), and its
// container's process is floe's small pod init, or floe itself: a binary
// floe owns, so no image is needed.
func newProbes(cfg *config.Config, log *slog.Logger) *handlerprobe.Registry {
	bin := podInitExe(log)
	if bin == "" {
		if exe, err := os.Executable(); err == nil {
			bin = exe
		}
	}
	targets := make([]handlerprobe.Target, 0, len(cfg.Runtimes))
	for _, name := range slices.Sorted(maps.Keys(cfg.Runtimes)) {
		rt := cfg.Runtimes[name]
		// A sandboxed runtime sets its sandbox up (network included)
		// only when the container starts, so its probe starts it too.
		targets = append(targets, handlerprobe.Target{Name: name, RuntimePath: rt.RuntimePath, RuntimeArgs: rt.RuntimeArgs,
			Start: rt.Sandboxed(), SystemdCgroup: cfg.CgroupManager == "systemd"})
	}
	return handlerprobe.NewRegistry(targets, handlerprobe.Options{
		Dir: filepath.Join(cfg.RunDir, "probe"), Binary: bin, CgroupRoot: "/sys/fs/cgroup",
	}, log)
}

// startContainers sets up one conmon monitor per runtime handler and the
// container core. Without a usable monitor floe still serves pods and
// images, and container RPCs say why they cannot work.
func startContainers(cfg *config.Config, db *store.DB, imgs *images.Service, sandboxes *sandbox.Manager, cg *cgroups.Support, defaults *containerDefaults, mets *metrics.Metrics, devices *cdi.Registry, log *slog.Logger) (*container.Manager, func()) {
	monitors := map[string]*monitor.Monitor{}
	closeAll := func() {
		for _, m := range monitors {
			m.Close()
		}
	}
	for name, rt := range cfg.Runtimes {
		m, err := monitor.New(monitor.Config{
			ConmonPath:    rt.MonitorPath,
			RuntimePath:   rt.RuntimePath,
			RuntimeRoot:   rt.RuntimeRoot,
			RuntimeArgs:   rt.RuntimeArgs,
			Sandboxed:     rt.Sandboxed(),
			ShimPath:      shimBinary(log),
			SystemdCgroup: cfg.CgroupManager == "systemd",
			ExitDir:       filepath.Join(cfg.RunDir, "exits", name),
			SocketDir:     filepath.Join(cfg.RunDir, "s"),
			LogSizeMax:    int64(cfg.Containers.LogSizeMax),
			CRIUPath:      criuFor(rt, cfg.Checkpoint.CRIUPath),
			Log:           log.With("handler", name),
		})
		if err != nil {
			log.Error("runtime handler cannot run containers", "handler", name, "err", err)
			continue
		}
		monitors[name] = m
	}
	if len(monitors) == 0 {
		log.Error("no runtime handler can run containers; container RPCs will fail")
		return nil, closeAll
	}
	runtimes := make(map[string]container.Runtime, len(monitors))
	for name, m := range monitors {
		runtimes[name] = m
		if cfg.Tracing.Enable {
			runtimes[name] = container.Traced(m, name)
		}
	}
	return container.New(container.Options{
		DB:           db,
		Images:       imgs,
		Runtimes:     runtimes,
		Sandboxes:    sandboxes,
		CgroupDriver: cfg.CgroupManager,
		BundleDir:    filepath.Join(cfg.RunDir, "containers"),
		Spec: ocispec.Options{
			DefaultCapabilities: cfg.Containers.DefaultCapabilities,
			Cgroups:             cg,
			Defaults:            defaults.Get,
			Log:                 log,
		},
		// Containers share the sandboxes' creation settings: one bound
		// and one grace for every kubelet create retry.
		CreateTimeout:     cfg.Sandbox.CreateTimeout.Std(),
		AbandonedGrace:    cfg.Sandbox.AbandonedGrace.Std(),
		Devices:           devices,
		SandboxedHandlers: sandboxedHandlers(cfg),
		OnExit:            mets.ObserveExit,
		Log:               log,
	}), closeAll
}

// newNRI connects the cores to NRI plugins (nil when [nri] enable is
// false or no container core runs); Start serves them.
func newNRI(cfg *config.Config, sandboxes *sandbox.Manager, containers *container.Manager, devices *cdi.Registry, log *slog.Logger) (*nri.NRI, error) {
	if !cfg.NRI.Enable || containers == nil {
		log.Info("NRI disabled", "enable", cfg.NRI.Enable)
		return nil, nil
	}
	n, err := nri.New(nri.Config{
		SocketPath:          cfg.NRI.SocketPath,
		PluginPath:          cfg.NRI.PluginPath,
		PluginConfigPath:    cfg.NRI.PluginConfigPath,
		RegistrationTimeout: cfg.NRI.RegistrationTimeout.Std(),
		RequestTimeout:      cfg.NRI.RequestTimeout.Std(),
	}, sandboxes, containers, devices, log)
	if err != nil {
		return nil, err
	}
	sandboxes.SetHooks(n)
	containers.SetHooks(n)
	return n, nil
}

// reloadConfig applies the parts of the configuration that can change
// while running: the log level, the registries configuration files and
// the [containers] defaults (with the seccomp profile and hook files they
// name). The CNI config dir is re-read on every use already; other
// settings need a restart.
func reloadConfig(log *slog.Logger, level *slog.LevelVar, reload Reloader, imgs *images.Service, defaults *containerDefaults) {
	if reload == nil {
		return
	}
	cfg, err := reload()
	if err != nil {
		log.Error("SIGHUP: configuration not reloaded", "err", err)
		return
	}
	l, _ := config.ParseLevel(cfg.LogLevel)
	level.Set(l)
	if err := imgs.ReloadRegistries(); err != nil {
		log.Error("SIGHUP: registries", "err", err)
	}
	defaults.Reload(cfg)
	log.Info("SIGHUP: configuration reloaded", "logLevel", cfg.LogLevel)
}

// criuFor is the criu a handler's runtime checkpoints with: runc takes it
// as its global --criu flag; other runtimes neither take the flag nor
// checkpoint through floe.
func criuFor(rt config.Runtime, criuPath string) string {
	if filepath.Base(rt.RuntimePath) != "runc" {
		return ""
	}
	return criuPath
}
