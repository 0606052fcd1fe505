package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/floe-cri/floe/internal/cgroups"
	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/failpoint"
	"github.com/floe-cri/floe/internal/network"
	"github.com/floe-cri/floe/internal/nspin"
	"github.com/floe-cri/floe/internal/objects"
	"github.com/floe-cri/floe/internal/podfiles"
	"github.com/floe-cri/floe/internal/podinit"
	"github.com/floe-cri/floe/internal/store"
)

// Options configure a Manager.
type Options struct {
	DB             *store.DB
	Network        *network.Manager
	NetnsDir       string
	RunDir         string // pods live in RunDir/pods/<id>
	ShmSize        int64
	AbandonedGrace time.Duration
	CreateTimeout  time.Duration
	// Handlers are the configured runtime handler names; DefaultHandler is
	// used for an empty handler.
	Handlers       []string
	DefaultHandler string
	HostResolvConf string
	// CgroupDriver is how the kubelet's CgroupParent is read ("cgroupfs"
	// or "systemd"); Cgroups is the host's layout, detected at startup.
	CgroupDriver string
	Cgroups      *cgroups.Support
	// PodInit are the pod init programs (cmd/floe-pod-init as the
	// launcher, cmd/floe-pod-reaper as the init); empty ones re-execute
	// floe itself.
	PodInit podinit.Programs
	// PodRuntimes keep the per-pod sandbox of sandboxed handlers (gVisor),
	// by handler name; other handlers have none.
	PodRuntimes map[string]PodRuntime
	Log         *slog.Logger
}

// PodRuntime keeps the sandbox a sandboxed runtime handler runs all of a
// pod's containers in (internal/podsandbox). StopPod must accept a pod
// whose sandbox was never made or is gone (undo, crash recovery, repeated
// stops).
type PodRuntime interface {
	StartPod(ctx context.Context, sb *Sandbox) error
	StopPod(ctx context.Context, sb *Sandbox) error
	// PodRunning tells a restarted floe whether the sandbox survived.
	PodRunning(ctx context.Context, sb *Sandbox) bool
}

// Containers is what the sandbox core needs of the container core: a
// stopped pod's containers are stopped, a removed pod's removed.
type Containers interface {
	StopPod(ctx context.Context, sandboxID string, timeout time.Duration) error
	RemovePod(ctx context.Context, sandboxID string) error
}

// Manager owns every sandbox of this daemon.
type Manager struct {
	opts Options
	log  *slog.Logger

	// table holds the records, their locks and the creations under way.
	table *objects.Table[Sandbox, *Sandbox]

	containers Containers
	hooks      Hooks // NRI plugins, see hooks.go

	// netnsDirReady is set once the netns dir is a shared mount point of
	// its own. Preparing it reads the whole mount table, which grows with
	// the pods, so it is done once, not per pod.
	netnsDirMu    sync.Mutex
	netnsDirReady bool
}

// prepareNetnsDir makes the netns dir a shared mount point once per
// daemon; a failure is retried by the next pod.
func (m *Manager) prepareNetnsDir() error {
	m.netnsDirMu.Lock()
	defer m.netnsDirMu.Unlock()
	if m.netnsDirReady {
		return nil
	}
	warning, err := nspin.PrepareNetnsDir(m.opts.NetnsDir)
	if err != nil {
		return err
	}
	if warning != "" {
		m.log.Warn("netns dir mounted so that pins are doubled", "dir", m.opts.NetnsDir, "reason", warning)
	}
	m.netnsDirReady = true
	return nil
}

// SetContainers connects the container core (created after this one).
func (m *Manager) SetContainers(c Containers) { m.containers = c }

// New returns a Manager; call Restore before serving requests.
func New(opts Options) *Manager {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Manager{
		opts: opts,
		log:  opts.Log,
		table: objects.New[Sandbox](schema(), objects.Options{
			DB: opts.DB, CreateTimeout: opts.CreateTimeout, AbandonedGrace: opts.AbandonedGrace, Log: opts.Log,
		}),
		hooks: noHooks{},
	}
}

// Close stops background work (abandoned-sandbox timers, creations under
// way) and waits for it.
func (m *Manager) Close() { m.table.Close() }

// Run creates a sandbox, or returns the one a previous identical request
// created after its caller gave up.
func (m *Manager) Run(ctx context.Context, spec Spec) (string, error) {
	if err := m.validate(&spec); err != nil {
		return "", err
	}
	hash := spec.hash()
	// The creation runs on its own context: a caller that times out must
	// not leave a half-made sandbox, and its retry should get the result.
	return m.table.Create(ctx, objects.Creation[Sandbox]{
		Key: spec.reservationKey(), Hash: hash,
		Make: func(ctx context.Context, id string) (*Sandbox, error) {
			return m.create(ctx, id, spec, hash)
		},
		Publish: func(sb *Sandbox) {
			failpoint.Hit("sandbox.before-ready-save")
			sb.State = StateReady
		},
		// Plugins that connect meanwhile learn of the pod once.
		Begin:   m.hooks.BlockSync,
		Undo:    m.undo,
		Abandon: m.abandon,
		Err:     classify,
	})
}

// abandon removes a sandbox no retry claimed.
func (m *Manager) abandon(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.CreateTimeout)
	defer cancel()
	if err := m.Remove(ctx, id); err != nil {
		m.log.Error("remove abandoned sandbox", "pod", id, "err", err)
	}
}

func validIP(s string) bool { return net.ParseIP(s) != nil }

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// netnsName is the readable name under /run/netns: namespace_name-<id8>.
func netnsName(spec Spec, id string) string {
	base := unsafeChars.ReplaceAllString(spec.Namespace+"_"+spec.Name, "-")
	if len(base) > 60 {
		base = base[:60]
	}
	return base + "-" + id[:8]
}

func (m *Manager) validate(spec *Spec) error {
	if spec.Name == "" {
		return errdefs.InvalidArgument("config.metadata.name", "must not be empty")
	}
	if spec.Namespace == "" {
		return errdefs.InvalidArgument("config.metadata.namespace", "must not be empty")
	}
	if spec.LogDirectory != "" && !filepath.IsAbs(spec.LogDirectory) {
		return errdefs.InvalidArgument("config.log_directory", "%q is not an absolute path", spec.LogDirectory)
	}
	if spec.RuntimeHandler == "" {
		spec.RuntimeHandler = m.opts.DefaultHandler
	}
	known := false
	for _, h := range m.opts.Handlers {
		known = known || h == spec.RuntimeHandler
	}
	if !known {
		return errdefs.InvalidArgument("runtime_handler", "%q is not configured; configured handlers: %s", spec.RuntimeHandler, strings.Join(m.opts.Handlers, ", "))
	}
	if m.opts.PodRuntimes[spec.RuntimeHandler] != nil {
		// The sandbox brings its own kernel and network stack.
		if spec.NetworkMode == ModeNode {
			return errdefs.FailedPrecondition("config.linux.security_context.namespace_options.network: runtime handler %q runs each pod in its own sandbox with its own network stack; hostNetwork pods are not supported", spec.RuntimeHandler)
		}
		if spec.UserNS != nil {
			return errdefs.FailedPrecondition("config.linux.security_context.namespace_options.userns_options: runtime handler %q does not run pods in a user namespace of floe's making", spec.RuntimeHandler)
		}
		// Its kernel has its own IPC objects and process table: the
		// node's cannot be shared.
		if spec.IPCMode == ModeNode {
			return errdefs.FailedPrecondition("config.linux.security_context.namespace_options.ipc: runtime handler %q runs each pod in its own kernel; hostIPC pods are not supported", spec.RuntimeHandler)
		}
		if spec.PIDMode == ModeNode {
			return errdefs.FailedPrecondition("config.linux.security_context.namespace_options.pid: runtime handler %q runs each pod in its own kernel; hostPID pods are not supported", spec.RuntimeHandler)
		}
	}
	// A parent in the other driver's form is refused with both settings
	// named (a slice name under cgroupfs is expanded, which is safe).
	if _, err := cgroups.ParentPath(m.opts.CgroupDriver, spec.CgroupParent); err != nil {
		return err
	}
	if err := podfiles.ValidateDNS(spec.DNS); err != nil {
		return errdefs.InvalidArgument("config.dns_config", "%v", err)
	}
	for i, pm := range spec.PortMappings {
		field := fmt.Sprintf("config.port_mappings[%d]", i)
		if pm.ContainerPort <= 0 || pm.ContainerPort > 65535 {
			return errdefs.InvalidArgument(field+".container_port", "%d is not a port number (1-65535)", pm.ContainerPort)
		}
		if pm.HostPort < 0 || pm.HostPort > 65535 {
			return errdefs.InvalidArgument(field+".host_port", "%d is not a port number (0-65535)", pm.HostPort)
		}
		if pm.HostIP != "" && !validIP(pm.HostIP) {
			return errdefs.InvalidArgument(field+".host_ip", "%q is not an IP address", pm.HostIP)
		}
	}
	return nil
}

// create makes every part of a sandbox. The record is written before each
// side effect becomes visible, so a crash at any point leaves a record that
// Restore can undo. On error everything made so far is undone.
func (m *Manager) create(ctx context.Context, id string, spec Spec, hash string) (*Sandbox, error) {
	log := m.log.With("pod", id, "name", spec.Name, "namespace", spec.Namespace)
	sb := m.newSandbox(id, spec, hash)
	fail := func(step string, err error) (*Sandbox, error) {
		log.Error("create sandbox failed; undoing", "step", step, "err", err)
		m.undo(sb)
		return nil, fmt.Errorf("%s for pod %s/%s: %w", step, spec.Namespace, spec.Name, err)
	}
	if sb.NetnsPath != "" {
		// Planned before anything is made: a node without a network
		// configuration fails the pod with nothing to undo. The plan is in
		// the first record, so a crash anywhere before or during ADD is
		// undone by a DEL (which tolerates a missing netns) without a
		// second commit just before ADD.
		att, err := m.opts.Network.Plan(m.podInfo(sb))
		if err != nil {
			return nil, fmt.Errorf("set up pod network for pod %s/%s: %w", spec.Namespace, spec.Name, err)
		}
		sb.Network = att
	}
	if err := m.table.Add(sb); err != nil {
		return fail("record sandbox", err)
	}
	failpoint.Hit("sandbox.after-record")
	hostname, err := podHostname(spec)
	if err != nil {
		return fail("read node hostname", err)
	}
	if what, err := m.writePodFiles(sb, hostname); err != nil {
		return fail(what, err)
	}
	failpoint.Hit("sandbox.after-pod-files")
	if sb.NetnsPath != "" {
		if err := m.prepareNetnsDir(); err != nil {
			return fail("prepare netns dir", err)
		}
	}
	if what, err := m.pinNamespaces(ctx, sb, hostname); err != nil {
		return fail(what, err)
	}
	failpoint.Hit("sandbox.after-pin")
	podRuntime := m.opts.PodRuntimes[spec.RuntimeHandler]
	// A sandboxed runtime keeps its own process tree for the pod.
	if spec.PIDMode == ModePod && spec.UserNS == nil && podRuntime == nil {
		init, err := podinit.Start(ctx, podinit.Options{Programs: m.opts.PodInit, CgroupProcs: m.podCgroupProcs(sb), PodID: id})
		if err != nil {
			return fail("start pod init", err)
		}
		failpoint.Hit("sandbox.after-init-start")
		sb.PodInit = init
		if err := m.save(sb); err != nil {
			return fail("record pod init", err)
		}
		log.Info("pod init started for the shared PID namespace", "pid", init.Pid)
	}
	if att := sb.Network; att != nil {
		start := time.Now()
		if err := m.opts.Network.Add(ctx, m.podInfo(sb), att); err != nil {
			// Add already ran DEL.
			sb.NetworkDown = true
			return fail("set up pod network", err)
		}
		failpoint.Hit("sandbox.after-cni-add")
		log.Info("pod network set up", "netns", sb.NetnsName, "ips", att.IPs, "network", att.NetworkName, "took", time.Since(start))
	}
	if podRuntime != nil {
		// After ADD: the runtime takes over the interfaces it finds in
		// the pod's network namespace. Named by the pod id, the sandbox
		// is found by a restarted floe without a record of its own.
		start := time.Now()
		if err := podRuntime.StartPod(ctx, sb); err != nil {
			return fail("start pod sandbox", err)
		}
		failpoint.Hit("sandbox.after-pod-sandbox-start")
		log.Info("pod sandbox started", "handler", spec.RuntimeHandler, "took", time.Since(start))
	}
	if err := m.hooks.RunPodSandbox(ctx, sb); err != nil {
		return fail("NRI RunPodSandbox", err)
	}
	log.Info("sandbox created", "netns", sb.NetnsName)
	return sb, nil
}

// newSandbox is the first record of a pod: where its files and pinned
// namespaces will be, in state creating.
func (m *Manager) newSandbox(id string, spec Spec, hash string) *Sandbox {
	sb := &Sandbox{
		Meta:       objects.Meta{ID: id, SpecHash: hash, CreatedAt: time.Now().UnixNano()},
		Spec:       spec,
		State:      StateCreating,
		RunDir:     filepath.Join(m.opts.RunDir, "pods", id),
		CgroupPath: cgroups.PodPath(m.opts.CgroupDriver, spec.CgroupParent),
	}
	if spec.NetworkMode != ModeNode {
		sb.NetnsName = netnsName(spec, id)
		sb.NetnsPath = filepath.Join(m.opts.NetnsDir, sb.NetnsName)
		// The UTS namespace follows the network: a hostNetwork pod keeps
		// the node's hostname, as the kubelet expects.
		sb.UTSPath = filepath.Join(sb.RunDir, "ns", "uts")
	}
	if spec.IPCMode != ModeNode {
		sb.IPCPath = filepath.Join(sb.RunDir, "ns", "ipc")
	}
	return sb
}

// podHostname is the pod's hostname: the one asked for, else the node's.
func podHostname(spec Spec) (string, error) {
	if spec.Hostname != "" {
		return spec.Hostname, nil
	}
	// Like CRI-O and containerd: a pod without a hostname gets the
	// node's. The pod name is no substitute: it may be longer than the
	// 64 bytes sethostname accepts.
	return os.Hostname()
}

// writePodFiles writes the pod's hostname, resolv.conf and shm size
// files; on failure it says which step failed.
func (m *Manager) writePodFiles(sb *Sandbox, hostname string) (string, error) {
	resolv, err := podfiles.ResolvConf(sb.Spec.DNS, m.opts.HostResolvConf)
	if err != nil {
		return "read host resolv.conf", err
	}
	shm := m.opts.ShmSize
	if sb.Spec.ShmSize > 0 {
		shm = sb.Spec.ShmSize
	}
	if err := podfiles.Write(sb.Files(), hostname, resolv, shm); err != nil {
		return "write pod files", err
	}
	return "", nil
}

// pinNamespaces creates and pins the pod's network, IPC and UTS
// namespaces (inside its user namespace when it has one); on failure it
// says which step failed.
func (m *Manager) pinNamespaces(ctx context.Context, sb *Sandbox, hostname string) (string, error) {
	if sb.Spec.UserNS != nil {
		if err := m.pinInUserns(ctx, sb, hostname); err != nil {
			return "pin namespaces in the pod's user namespace", err
		}
		return "", nil
	}
	if err := nspin.Pin(nspin.Request{NetPath: sb.NetnsPath, IPCPath: sb.IPCPath, UTSPath: sb.UTSPath, Hostname: hostname}); err != nil {
		return "pin namespaces", err
	}
	return "", nil
}

// classify keeps a missing network configuration a precondition failure,
// so the kubelet reports it as such rather than as an internal error.
func classify(err error) error {
	if errors.Is(err, network.ErrNoConfig) {
		return errdefs.FailedPrecondition("%v", err)
	}
	return err
}

func (m *Manager) podInfo(sb *Sandbox) network.PodInfo {
	return network.PodInfo{
		ID:           sb.ID,
		Name:         sb.Spec.Name,
		Namespace:    sb.Spec.Namespace,
		UID:          sb.Spec.UID,
		NetnsPath:    sb.NetnsPath,
		PortMappings: sb.Spec.PortMappings,
		Bandwidth:    sb.Spec.Bandwidth,
	}
}

// undo releases everything a sandbox holds and deletes its record. It is
// used for failed creations and crash recovery of half-made ones.
func (m *Manager) undo(sb *Sandbox) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := m.release(ctx, sb); err != nil {
		m.log.Error("undo sandbox: release failed; the record is kept so a restart retries", "pod", sb.ID, "err", err)
		return
	}
	if err := podfiles.Remove(sb.Files()); err != nil {
		m.log.Error("undo sandbox: remove pod dir", "pod", sb.ID, "err", err)
		return
	}
	// Not found: the creation failed before its first record.
	if _, err := m.update(sb.ID, removed); err != nil && errdefs.KindOf(err) != errdefs.KindNotFound {
		m.log.Error("undo sandbox: delete record", "pod", sb.ID, "err", err)
	}
}

// release tears down the network, unpins namespaces and unmounts shm. Each
// step is idempotent, so it can be repeated after a failure or a crash.
func (m *Manager) release(ctx context.Context, sb *Sandbox) error {
	inits := []*podinit.Init{}
	if sb.PodInit != nil {
		inits = append(inits, sb.PodInit)
	} else if sb.Spec.PIDMode == ModePod || sb.Spec.UserNS != nil {
		// A crash between launching the init and recording it: the init
		// carries the pod id, so it is found all the same.
		found, err := podinit.Find(sb.ID)
		if err != nil {
			return fmt.Errorf("look for the pod init: %w", err)
		}
		inits = found
	}
	for _, init := range inits {
		if init.Alive() {
			// Ending PID 1 ends every process left in the namespace.
			if err := init.Stop(ctx, 10*time.Second); err != nil {
				return fmt.Errorf("stop pod init: %w", err)
			}
		}
	}
	if pr := m.opts.PodRuntimes[sb.Spec.RuntimeHandler]; pr != nil {
		// Before DEL: the sandbox holds the pod's interfaces.
		if err := pr.StopPod(ctx, sb); err != nil {
			return fmt.Errorf("stop pod sandbox: %w", err)
		}
	}
	if sb.Network != nil && !sb.NetworkDown {
		start := time.Now()
		if err := m.opts.Network.Teardown(ctx, m.podInfo(sb), sb.Network); err != nil {
			return err
		}
		sb.NetworkDown = true
		failpoint.Hit("sandbox.stop.after-cni-del")
		m.log.Info("pod network torn down", "pod", sb.ID, "took", time.Since(start))
	}
	if err := nspin.Unpin(sb.NetnsPath, sb.IPCPath, sb.UTSPath, sb.UserPath); err != nil {
		return fmt.Errorf("unpin namespaces: %w", err)
	}
	if err := podfiles.UnmountShm(sb.Files()); err != nil {
		return err
	}
	return nil
}

// resolve finds a sandbox by id or unique id prefix.
func (m *Manager) resolve(idOrPrefix string) (*Sandbox, error) { return m.table.Get(idOrPrefix) }

// Get returns a copy of one sandbox.
func (m *Manager) Get(idOrPrefix string) (*Sandbox, error) { return m.resolve(idOrPrefix) }

// Stop releases the pod's network, namespaces and shm. Stopping an unknown
// or already stopped sandbox succeeds.
func (m *Manager) Stop(ctx context.Context, idOrPrefix string) error {
	sb, err := m.table.Find(idOrPrefix)
	if sb == nil {
		return err
	}
	defer m.table.Lock(sb.ID)()
	// Re-read under the operation lock: a concurrent stop may have run.
	if sb, err = m.resolve(sb.ID); err != nil {
		return nil
	}
	// Containers still running are killed: the kubelet has already given
	// each its grace period through StopContainer.
	var stopErr error
	if m.containers != nil {
		stopErr = m.containers.StopPod(ctx, sb.ID, 0)
	}
	if sb.State == StateReady {
		m.hooks.StopPodSandbox(ctx, sb)
	}
	// The pod's network, namespaces and shm are released even when a
	// container could not be stopped: a container the runtime will not
	// end must not keep the pod's IP, its hostPort DNAT rules (which
	// would catch the traffic of every later pod on that port) or its
	// netns. What holds the netns keeps it alive without its pin.
	releaseErr := m.release(ctx, sb)
	// Persist progress (NetworkDown) even on failure so the retry skips
	// what is already done.
	if _, err := m.update(sb.ID, released(sb, releaseErr == nil)); err != nil {
		return err
	}
	if err := errors.Join(stopErr, releaseErr); err != nil {
		m.log.Error("stop pod sandbox", "pod", sb.ID, "containersStopped", stopErr == nil, "released", releaseErr == nil, "err", err)
		return fmt.Errorf("stop pod sandbox %s: %w", sb.ID, err)
	}
	m.log.Info("sandbox stopped", "pod", sb.ID)
	return nil
}

// Remove stops the sandbox if needed and deletes it. Removing an unknown
// sandbox succeeds.
func (m *Manager) Remove(ctx context.Context, idOrPrefix string) error {
	sb, err := m.table.Find(idOrPrefix)
	if sb == nil {
		return err
	}
	if err := m.Stop(ctx, sb.ID); err != nil {
		return err
	}
	if m.containers != nil {
		if err := m.containers.RemovePod(ctx, sb.ID); err != nil {
			return fmt.Errorf("remove containers of pod sandbox %s: %w", sb.ID, err)
		}
	}
	defer m.table.Lock(sb.ID)()
	// Re-read under the operation lock: a concurrent remove may have run.
	if _, err := m.resolve(sb.ID); err != nil {
		return nil
	}
	if err := podfiles.Remove(sb.Files()); err != nil {
		return fmt.Errorf("remove pod sandbox %s: %w", sb.ID, err)
	}
	failpoint.Hit("sandbox.remove.before-record-delete")
	if _, err := m.update(sb.ID, removed); err != nil {
		return err
	}
	m.hooks.RemovePodSandbox(ctx, sb)
	m.table.Forget(sb.ID)
	m.log.Info("sandbox removed", "pod", sb.ID)
	return nil
}

// UpdateConfig replaces the stored CRI configuration (Spec.Raw) of a
// sandbox with what update returns, and persists it. The reservation hash
// is kept: it identifies the original request, not the current config.
func (m *Manager) UpdateConfig(idOrPrefix string, update func(raw []byte) ([]byte, error)) error {
	sb, err := m.resolve(idOrPrefix)
	if err != nil {
		return err
	}
	defer m.table.Lock(sb.ID)()
	_, err = m.update(sb.ID, func(r *Sandbox) error {
		raw, err := update(r.Spec.Raw)
		if err != nil {
			return err
		}
		r.Spec.Raw = raw
		return nil
	})
	return err
}

// List returns copies of the claimed sandboxes that match f, oldest first.
func (m *Manager) List(f Filter) []*Sandbox {
	return m.table.List(f.match)
}

// View is List for read-only callers: the records themselves, which must
// not be modified or kept (see objects.Table.View).
func (m *Manager) View(f Filter) []*Sandbox {
	return m.table.View(f.match)
}

// Restore loads the database after a (re)start. Half-created sandboxes are
// undone; ready ones whose namespace pins are gone (a reboot wiped /run)
// are released and reported not ready; unclaimed ones get a new grace
// period.
func (m *Manager) Restore(ctx context.Context) error {
	records, err := m.table.Load()
	if err != nil {
		return err
	}
	for _, sb := range records {
		if sb.CgroupPath == "" {
			// Records from before it was recorded at creation.
			sb.CgroupPath = cgroups.PodPath(m.opts.CgroupDriver, sb.Spec.CgroupParent)
		}
		m.table.Adopt(sb, m.abandon)
		switch {
		case sb.State == StateCreating:
			m.log.Warn("undoing a sandbox whose creation was interrupted", "pod", sb.ID)
			m.undo(sb.clone())
		case sb.State == StateReady && (!m.pinsIntact(sb) || !m.podRuntimeRunning(ctx, sb)):
			m.log.Warn("sandbox lost its namespaces or its runtime sandbox while floe was down; marking it not ready", "pod", sb.ID, "handler", sb.Spec.RuntimeHandler)
			cp := sb.clone()
			err := m.release(ctx, cp)
			if err != nil {
				m.log.Error("release sandbox after restart", "pod", sb.ID, "err", err)
			}
			if _, err := m.update(sb.ID, released(cp, err == nil)); err != nil {
				return err
			}
		}
	}
	visible, _ := m.table.Len()
	m.log.Info("restored sandboxes", "count", visible)
	return nil
}

// released is the update after a release of sb (a copy of the record):
// it keeps its progress, and it is not ready once all was released.
func released(sb *Sandbox, all bool) func(*Sandbox) error {
	return func(r *Sandbox) error {
		r.NetworkDown = sb.NetworkDown
		if all {
			r.State = StateNotReady
		}
		return nil
	}
}

// podCgroupProcs are the cgroup.procs files of the pod's cgroup (created
// by the kubelet) in every hierarchy where it exists, so the pod init is
// accounted to the pod. Under the systemd driver systemd owns the pod's
// slice and the init is left where floe runs.
func (m *Manager) podCgroupProcs(sb *Sandbox) []string {
	if m.opts.Cgroups == nil || m.opts.CgroupDriver == cgroups.DriverSystemd {
		return nil
	}
	return m.opts.Cgroups.ProcsFiles(sb.CgroupPath)
}

// podRuntimeRunning reports whether a sandboxed handler's pod sandbox is
// still there (true for other handlers).
func (m *Manager) podRuntimeRunning(ctx context.Context, sb *Sandbox) bool {
	pr := m.opts.PodRuntimes[sb.Spec.RuntimeHandler]
	return pr == nil || pr.PodRunning(ctx, sb)
}

func (m *Manager) pinsIntact(sb *Sandbox) bool {
	if sb.PodInit != nil && !sb.PodInit.Alive() {
		return false
	}
	for _, p := range []string{sb.NetnsPath, sb.IPCPath, sb.UTSPath, sb.UserPath} {
		if p != "" && !nspin.IsPinned(p) {
			return false
		}
	}
	return true
}
