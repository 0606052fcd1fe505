package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/floe-cri/floe/internal/cgroups"
	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/failpoint"
	"github.com/floe-cri/floe/internal/ids"
	"github.com/floe-cri/floe/internal/network"
	"github.com/floe-cri/floe/internal/nspin"
	"github.com/floe-cri/floe/internal/oplock"
	"github.com/floe-cri/floe/internal/podfiles"
	"github.com/floe-cri/floe/internal/podinit"
	"github.com/floe-cri/floe/internal/reserve"
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
	// or "systemd").
	CgroupDriver string
	// PodInitExe is the pod init program (cmd/floe-pod-init); empty
	// re-executes floe itself as the init.
	PodInitExe string
	Log        *slog.Logger
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

	// mu guards the maps below. It is never held across CNI, mounts, the
	// helper process or database writes, so lists stay prompt while one
	// sandbox is slow.
	mu        sync.Mutex
	sandboxes map[string]*Sandbox          // every known sandbox, by id
	byKey     map[string]string            // reservation key -> sandbox id
	inflight  map[string]*reserve.Creation // reservation key -> creation under way

	containers Containers
	hooks      Hooks // NRI plugins, see hooks.go

	// ops serialises stop/remove/update of one object.
	ops oplock.Set

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
}

// SetContainers connects the container core (created after this one).
func (m *Manager) SetContainers(c Containers) { m.containers = c }

// New returns a Manager; call Restore before serving requests.
func New(opts Options) *Manager {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Manager{
		opts:      opts,
		log:       opts.Log,
		sandboxes: map[string]*Sandbox{},
		byKey:     map[string]string{},
		inflight:  map[string]*reserve.Creation{},
		stop:      make(chan struct{}),
		hooks:     noHooks{},
	}
}

// Close stops background work (abandoned-sandbox timers) and waits for it.
func (m *Manager) Close() {
	m.stopOnce.Do(func() { close(m.stop) })
	m.wg.Wait()
}

// Run creates a sandbox, or returns the one a previous identical request
// created after its caller gave up.
func (m *Manager) Run(ctx context.Context, spec Spec) (string, error) {
	if err := m.validate(&spec); err != nil {
		return "", err
	}
	key, hash := spec.reservationKey(), spec.hash()

	m.mu.Lock()
	if c, ok := m.inflight[key]; ok {
		if c.Hash != hash {
			m.mu.Unlock()
			return "", errdefs.AlreadyExists("pod sandbox name %q is reserved for sandbox %s, which is being created with a different configuration", key, c.ID)
		}
		c.AddWaiter(ctx)
		m.mu.Unlock()
		m.log.Info("retry of a sandbox creation in progress: waiting for it", "pod", c.ID, "name", key)
		return c.Wait(ctx, "sandbox")
	}
	if id, ok := m.byKey[key]; ok {
		sb := m.sandboxes[id]
		if sb.Unclaimed && sb.SpecHash == hash {
			sb.Unclaimed = false
			rec := sb.clone()
			m.mu.Unlock()
			if err := m.opts.DB.Put(store.Sandboxes, id, rec); err != nil {
				return "", err
			}
			m.log.Info("handed a sandbox finished after its caller's deadline to the retry", "pod", id, "name", key)
			return id, nil
		}
		m.mu.Unlock()
		return "", errdefs.AlreadyExists("pod sandbox name %q is already reserved for sandbox %s", key, id)
	}
	c := reserve.New(ids.New(), hash, ctx)
	m.inflight[key] = c
	m.mu.Unlock()

	// The creation runs on its own context: a caller that times out must
	// not leave a half-made sandbox, and its retry should get the result.
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opts.CreateTimeout)
		defer cancel()
		unblock := m.hooks.BlockSync()
		defer unblock()
		sb, err := m.create(cctx, c.ID, spec, hash)
		m.finish(key, c, sb, err)
	}()
	return c.Wait(ctx, "sandbox")
}

// finish publishes a finished creation. The sandbox is claimed when at
// least one caller is still waiting; otherwise it is kept unclaimed for the
// retry and removed after the grace period.
func (m *Manager) finish(key string, c *reserve.Creation, sb *Sandbox, err error) {
	if err != nil {
		m.mu.Lock()
		delete(m.inflight, key)
		m.mu.Unlock()
		c.Finish(classify(err))
		return
	}
	m.mu.Lock()
	claimed := c.Claimed()
	m.mu.Unlock()
	sb.State = StateReady
	sb.Unclaimed = !claimed
	failpoint.Hit("sandbox.before-ready-save")
	if err := m.opts.DB.Put(store.Sandboxes, sb.ID, sb); err != nil {
		m.undo(sb)
		m.mu.Lock()
		delete(m.inflight, key)
		m.mu.Unlock()
		c.Finish(fmt.Errorf("record sandbox %s: %w", sb.ID, err))
		return
	}
	m.mu.Lock()
	m.sandboxes[sb.ID] = sb
	m.byKey[key] = sb.ID
	delete(m.inflight, key)
	m.mu.Unlock()
	c.Finish(nil)
	if !claimed {
		m.log.Warn("sandbox finished after its caller gave up; keeping it for the retry", "pod", sb.ID, "name", key, "grace", m.opts.AbandonedGrace)
		m.scheduleAbandonCheck(sb.ID)
	}
}

// scheduleAbandonCheck removes the sandbox after the grace period unless a
// retry claimed it.
func (m *Manager) scheduleAbandonCheck(id string) {
	reserve.ExpireUnclaimed(&m.wg, m.stop, m.opts.AbandonedGrace, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		sb, ok := m.sandboxes[id]
		return ok && sb.Unclaimed
	}, func() {
		m.log.Warn("removing a sandbox no retry claimed", "pod", id)
		ctx, cancel := context.WithTimeout(context.Background(), m.opts.CreateTimeout)
		defer cancel()
		if err := m.Remove(ctx, id); err != nil {
			m.log.Error("remove abandoned sandbox", "pod", id, "err", err)
		}
	})
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
	sb := &Sandbox{
		ID:        id,
		Spec:      spec,
		SpecHash:  hash,
		State:     StateCreating,
		CreatedAt: time.Now().UnixNano(),
		RunDir:    filepath.Join(m.opts.RunDir, "pods", id),
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
	fail := func(step string, err error) (*Sandbox, error) {
		log.Error("create sandbox failed; undoing", "step", step, "err", err)
		m.undo(sb)
		return nil, fmt.Errorf("%s for pod %s/%s: %w", step, spec.Namespace, spec.Name, err)
	}
	if err := m.opts.DB.Put(store.Sandboxes, id, sb); err != nil {
		return fail("record sandbox", err)
	}
	failpoint.Hit("sandbox.after-record")
	hostname := spec.Hostname
	if hostname == "" {
		// Like CRI-O and containerd: a pod without a hostname gets the
		// node's. The pod name is no substitute: it may be longer than the
		// 64 bytes sethostname accepts.
		var err error
		if hostname, err = os.Hostname(); err != nil {
			return fail("read node hostname", err)
		}
	}
	resolv, err := podfiles.ResolvConf(spec.DNS, m.opts.HostResolvConf)
	if err != nil {
		return fail("read host resolv.conf", err)
	}
	if err := podfiles.Write(sb.Files(), hostname, resolv, m.opts.ShmSize); err != nil {
		return fail("write pod files", err)
	}
	failpoint.Hit("sandbox.after-pod-files")
	if sb.NetnsPath != "" {
		if err := nspin.PrepareNetnsDir(m.opts.NetnsDir); err != nil {
			return fail("prepare netns dir", err)
		}
	}
	if err := nspin.Pin(nspin.Request{NetPath: sb.NetnsPath, IPCPath: sb.IPCPath, UTSPath: sb.UTSPath, Hostname: hostname}); err != nil {
		return fail("pin namespaces", err)
	}
	failpoint.Hit("sandbox.after-pin")
	if spec.PIDMode == ModePod {
		init, err := podinit.Start(ctx, podinit.Options{InitExe: m.opts.PodInitExe, CgroupProcs: m.podCgroupProcs(spec.CgroupParent), PodID: id})
		if err != nil {
			return fail("start pod init", err)
		}
		failpoint.Hit("sandbox.after-init-start")
		sb.PodInit = init
		if err := m.opts.DB.Put(store.Sandboxes, id, sb); err != nil {
			return fail("record pod init", err)
		}
		log.Info("pod init started for the shared PID namespace", "pid", init.Pid)
	}
	if sb.NetnsPath != "" {
		att, err := m.opts.Network.Plan(m.podInfo(sb))
		if err != nil {
			return fail("set up pod network", err)
		}
		// Record the configuration before ADD: if floe dies during ADD,
		// Restore runs DEL with it and nothing stays allocated.
		sb.Network = att
		if err := m.opts.DB.Put(store.Sandboxes, id, sb); err != nil {
			return fail("record sandbox network", err)
		}
		start := time.Now()
		if err := m.opts.Network.Add(ctx, m.podInfo(sb), att); err != nil {
			// Add already ran DEL.
			sb.NetworkDown = true
			return fail("set up pod network", err)
		}
		failpoint.Hit("sandbox.after-cni-add")
		log.Info("pod network set up", "netns", sb.NetnsName, "ips", att.IPs, "network", att.NetworkName, "took", time.Since(start))
	}
	if err := m.hooks.RunPodSandbox(ctx, sb); err != nil {
		return fail("NRI RunPodSandbox", err)
	}
	log.Info("sandbox created", "netns", sb.NetnsName)
	return sb, nil
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
	if err := m.opts.DB.Delete(store.Sandboxes, sb.ID); err != nil {
		m.log.Error("undo sandbox: delete record", "pod", sb.ID, "err", err)
	}
}

// release tears down the network, unpins namespaces and unmounts shm. Each
// step is idempotent, so it can be repeated after a failure or a crash.
func (m *Manager) release(ctx context.Context, sb *Sandbox) error {
	inits := []*podinit.Init{}
	if sb.PodInit != nil {
		inits = append(inits, sb.PodInit)
	} else if sb.Spec.PIDMode == ModePod {
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
	if sb.Network != nil && !sb.NetworkDown {
		start := time.Now()
		if err := m.opts.Network.Teardown(ctx, m.podInfo(sb), sb.Network); err != nil {
			return err
		}
		sb.NetworkDown = true
		failpoint.Hit("sandbox.stop.after-cni-del")
		m.log.Info("pod network torn down", "pod", sb.ID, "took", time.Since(start))
	}
	if err := nspin.Unpin(sb.NetnsPath, sb.IPCPath, sb.UTSPath); err != nil {
		return fmt.Errorf("unpin namespaces: %w", err)
	}
	if err := podfiles.UnmountShm(sb.Files()); err != nil {
		return err
	}
	return nil
}

// resolve finds a sandbox by id or unique id prefix.
func (m *Manager) resolve(idOrPrefix string) (*Sandbox, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, err := ids.Lookup(m.sandboxes, idOrPrefix, "pod sandbox", "pod_sandbox_id")
	if err != nil {
		return nil, err
	}
	return m.sandboxes[id].clone(), nil
}

// Get returns a copy of one sandbox.
func (m *Manager) Get(idOrPrefix string) (*Sandbox, error) { return m.resolve(idOrPrefix) }

// Stop releases the pod's network, namespaces and shm. Stopping an unknown
// or already stopped sandbox succeeds.
func (m *Manager) Stop(ctx context.Context, idOrPrefix string) error {
	sb, err := m.resolve(idOrPrefix)
	if errdefs.KindOf(err) == errdefs.KindNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	defer m.ops.Lock(sb.ID)()
	// Re-read under the operation lock: a concurrent stop may have run.
	if sb, err = m.resolve(sb.ID); err != nil {
		return nil
	}
	// Containers still running are killed: the kubelet has already given
	// each its grace period through StopContainer.
	var releaseErr error
	if m.containers != nil {
		releaseErr = m.containers.StopPod(ctx, sb.ID, 0)
	}
	if releaseErr == nil && sb.State == StateReady {
		m.hooks.StopPodSandbox(ctx, sb)
	}
	if releaseErr == nil {
		releaseErr = m.release(ctx, sb)
	}
	if releaseErr == nil {
		sb.State = StateNotReady
	}
	// Persist progress (NetworkDown) even on failure so the retry skips
	// what is already done.
	if err := m.opts.DB.Put(store.Sandboxes, sb.ID, sb); err != nil {
		return err
	}
	m.mu.Lock()
	if _, ok := m.sandboxes[sb.ID]; ok {
		m.sandboxes[sb.ID] = sb
	}
	m.mu.Unlock()
	if releaseErr != nil {
		return fmt.Errorf("stop pod sandbox %s: %w", sb.ID, releaseErr)
	}
	m.log.Info("sandbox stopped", "pod", sb.ID)
	return nil
}

// Remove stops the sandbox if needed and deletes it. Removing an unknown
// sandbox succeeds.
func (m *Manager) Remove(ctx context.Context, idOrPrefix string) error {
	sb, err := m.resolve(idOrPrefix)
	if errdefs.KindOf(err) == errdefs.KindNotFound {
		return nil
	}
	if err != nil {
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
	defer m.ops.Lock(sb.ID)()
	if err := podfiles.Remove(sb.Files()); err != nil {
		return fmt.Errorf("remove pod sandbox %s: %w", sb.ID, err)
	}
	failpoint.Hit("sandbox.remove.before-record-delete")
	if err := m.opts.DB.Delete(store.Sandboxes, sb.ID); err != nil {
		return err
	}
	m.hooks.RemovePodSandbox(ctx, sb)
	m.mu.Lock()
	delete(m.sandboxes, sb.ID)
	if m.byKey[sb.Spec.reservationKey()] == sb.ID {
		delete(m.byKey, sb.Spec.reservationKey())
	}
	m.mu.Unlock()
	m.ops.Forget(sb.ID)
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
	defer m.ops.Lock(sb.ID)()
	if sb, err = m.resolve(sb.ID); err != nil {
		return err
	}
	raw, err := update(sb.Spec.Raw)
	if err != nil {
		return err
	}
	sb.Spec.Raw = raw
	if err := m.opts.DB.Put(store.Sandboxes, sb.ID, sb); err != nil {
		return err
	}
	m.mu.Lock()
	if _, ok := m.sandboxes[sb.ID]; ok {
		m.sandboxes[sb.ID] = sb
	}
	m.mu.Unlock()
	return nil
}

// List returns copies of the claimed sandboxes that match f, oldest first.
func (m *Manager) List(f Filter) []*Sandbox {
	m.mu.Lock()
	out := make([]*Sandbox, 0, len(m.sandboxes))
	for _, sb := range m.sandboxes {
		if !sb.Unclaimed && f.match(sb) {
			out = append(out, sb.clone())
		}
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt < out[j].CreatedAt })
	return out
}

// Restore loads the database after a (re)start. Half-created sandboxes are
// undone; ready ones whose namespace pins are gone (a reboot wiped /run)
// are released and reported not ready; unclaimed ones get a new grace
// period.
func (m *Manager) Restore(ctx context.Context) error {
	var records []*Sandbox
	err := m.opts.DB.ForEach(store.Sandboxes, func(id string, data []byte) error {
		sb := &Sandbox{}
		if err := json.Unmarshal(data, sb); err != nil {
			m.log.Error("skipping unreadable sandbox record", "pod", id, "err", err)
			return nil
		}
		records = append(records, sb)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load sandboxes: %w", err)
	}
	for _, sb := range records {
		switch {
		case sb.State == StateCreating:
			m.log.Warn("undoing a sandbox whose creation was interrupted", "pod", sb.ID)
			m.undo(sb)
			continue
		case sb.State == StateReady && !m.pinsIntact(sb):
			m.log.Warn("sandbox lost its namespaces while floe was down; marking it not ready", "pod", sb.ID)
			if err := m.release(ctx, sb); err != nil {
				m.log.Error("release sandbox after restart", "pod", sb.ID, "err", err)
			} else {
				sb.State = StateNotReady
			}
			if err := m.opts.DB.Put(store.Sandboxes, sb.ID, sb); err != nil {
				return err
			}
		}
		m.mu.Lock()
		m.sandboxes[sb.ID] = sb
		m.byKey[sb.Spec.reservationKey()] = sb.ID
		m.mu.Unlock()
		if sb.Unclaimed {
			m.scheduleAbandonCheck(sb.ID)
		}
	}
	m.log.Info("restored sandboxes", "count", len(m.sandboxes))
	return nil
}

// podCgroupProcs are the cgroup.procs files of the pod's cgroup (created by
// the kubelet) in every hierarchy where it exists, so the pod init is
// accounted to the pod.
func (m *Manager) podCgroupProcs(parent string) []string {
	if parent == "" {
		return nil
	}
	path, err := cgroups.ParentPath(m.opts.CgroupDriver, parent)
	if err != nil || !filepath.IsAbs(path) {
		return nil
	}
	var out []string
	candidates := []string{filepath.Join("/sys/fs/cgroup", path, "cgroup.procs")}
	if !cgroups.IsUnified() {
		candidates = nil
		for _, ctrl := range []string{"cpu", "cpuacct", "memory", "pids", "blkio", "cpuset", "devices", "freezer"} {
			candidates = append(candidates, filepath.Join("/sys/fs/cgroup", ctrl, path, "cgroup.procs"))
		}
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			out = append(out, c)
		}
	}
	return out
}

func (m *Manager) pinsIntact(sb *Sandbox) bool {
	if sb.PodInit != nil && !sb.PodInit.Alive() {
		return false
	}
	for _, p := range []string{sb.NetnsPath, sb.IPCPath, sb.UTSPath} {
		if p != "" && !nspin.IsPinned(p) {
			return false
		}
	}
	return true
}
