package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/cgroups"
	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/failpoint"
	"github.com/floe-cri/floe/internal/images"
	"github.com/floe-cri/floe/internal/lsm"
	"github.com/floe-cri/floe/internal/monitor"
	"github.com/floe-cri/floe/internal/objects"
	"github.com/floe-cri/floe/internal/ocispec"
	"github.com/floe-cri/floe/internal/podsandbox"
	"github.com/floe-cri/floe/internal/sandbox"
	"github.com/floe-cri/floe/internal/store"
)

// Sandboxes is what the container core needs of the sandbox core.
type Sandboxes interface {
	Get(idOrPrefix string) (*sandbox.Sandbox, error)
}

// Options configure a Manager.
type Options struct {
	DB        *store.DB
	Images    Images
	Runtimes  map[string]Runtime // by runtime handler
	Sandboxes Sandboxes
	// CgroupDriver is "cgroupfs" or "systemd".
	CgroupDriver string
	// BundleDir holds one bundle directory per container.
	BundleDir string
	Spec      ocispec.Options
	// CreateTimeout bounds one creation; AbandonedGrace is how long a
	// container finished after its caller gave up waits for the retry.
	CreateTimeout  time.Duration
	AbandonedGrace time.Duration
	// Devices resolves CDI devices; nil refuses containers asking for any.
	Devices Devices
	// SandboxedHandlers run a pod's containers inside the pod's sandbox
	// (internal/podsandbox): their specs carry the annotations naming it,
	// and the runtime keeps the pod's PID namespace.
	SandboxedHandlers map[string]bool
	// OnExit is told how each container ended (for metrics).
	OnExit func(reason string, monitorLost bool)
	Log    *slog.Logger
}

// Manager owns every container of this daemon.
type Manager struct {
	opts Options
	log  *slog.Logger

	// table holds the records, their locks and the creations under way.
	table *objects.Table[Container, *Container]

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup

	events  broadcaster // lifecycle events, see events.go
	hooks   Hooks       // NRI plugins, see extensions.go
	remover remover     // finishes removals, see remover.go
}

// New returns a Manager; call Restore before serving requests.
func New(opts Options) *Manager {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	m := &Manager{opts: opts, log: opts.Log, stop: make(chan struct{}), hooks: noHooks{}}
	m.table = objects.New[Container](m.schema(), objects.Options{
		DB: opts.DB, CreateTimeout: opts.CreateTimeout, AbandonedGrace: opts.AbandonedGrace, Log: opts.Log,
	})
	m.remover.wake = make(chan struct{}, 1)
	m.wg.Add(1)
	go m.removeLoop()
	return m
}

// Close stops the exit watchers and timers, and the remover once the
// removals already answered are finished; containers keep running.
func (m *Manager) Close() {
	m.stopOnce.Do(func() { close(m.stop) })
	m.table.Close()
	m.wg.Wait()
	m.events.close()
}

// Create makes a container in a ready sandbox, or returns the one an
// identical earlier request created after its caller gave up.
func (m *Manager) Create(ctx context.Context, sandboxID string, spec Spec) (string, error) {
	if spec.Name == "" {
		return "", errdefs.InvalidArgument("config.metadata.name", "must not be empty")
	}
	if spec.Image == "" {
		return "", errdefs.InvalidArgument("config.image.image", "must not be empty")
	}
	// Limits the host's cgroups cannot hold are refused here, before
	// anything is reserved or made; Build drops the default-valued ones.
	if _, _, err := ocispec.LinuxResources(spec.OCI.Resources, m.opts.Spec.Cgroups); err != nil {
		return "", err
	}
	if err := m.checkDevices(&spec); err != nil {
		return "", err
	}
	sb, err := m.opts.Sandboxes.Get(sandboxID)
	if err != nil {
		return "", err
	}
	if sb.State != sandbox.StateReady {
		return "", errdefs.FailedPrecondition("pod sandbox %s is not ready; cannot create container %q in it", sb.ID, spec.Name)
	}
	hash := spec.hash()
	return m.table.Create(ctx, objects.Creation[Container]{
		Key: reservationKey(sb.ID, &spec), Hash: hash,
		Make: func(ctx context.Context, id string) (*Container, error) {
			return m.create(ctx, id, sb, spec, hash)
		},
		Publish: func(c *Container) { c.State = StateCreated },
		// Plugins that connect meanwhile learn of the container once,
		// and hear of its creation before any StartContainer can come.
		Begin:     m.hooks.BlockSync,
		Published: func(c *Container) { m.hooks.PostCreateContainer(context.Background(), c) },
		Undo:      m.undo,
		Abandon:   m.abandon,
	})
}

// abandon removes a container no retry claimed.
func (m *Manager) abandon(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Remove(ctx, id); err != nil {
		m.log.Error("remove abandoned container", "container", id, "err", err)
	}
}

// create does the work of Create. Every side effect is preceded by a
// database record so a crash can be undone by Restore.
func (m *Manager) create(ctx context.Context, id string, sb *sandbox.Sandbox, spec Spec, hash string) (*Container, error) {
	log := m.log.With("container", id, "pod", sb.ID, "name", spec.Name)
	mon, ok := m.opts.Runtimes[sb.Spec.RuntimeHandler]
	if !ok {
		return nil, errdefs.FailedPrecondition("runtime handler %q of pod %s has no monitor", sb.Spec.RuntimeHandler, sb.ID)
	}
	img, err := m.imageOf(spec)
	if err != nil {
		return nil, err
	}
	volumeIDs, err := m.resolveImageVolumes(spec)
	if err != nil {
		return nil, err
	}
	c := &Container{
		Meta:      objects.Meta{ID: id, SpecHash: hash, CreatedAt: time.Now().UnixNano()},
		SandboxID: sb.ID, Spec: spec, State: StateCreating,
		Handler: sb.Spec.RuntimeHandler, ImageID: img.ID, ImageName: imageName(spec, img),
		Bundle:  filepath.Join(m.opts.BundleDir, id),
		LogPath: logPath(sb, spec, id, filepath.Join(m.opts.BundleDir, id)),
	}
	c.ImageRef = img.RepoDigestFor(c.ImageName)
	fail := func(step string, err error) (*Container, error) {
		log.Error("create container failed; undoing", "step", step, "err", err)
		m.undo(c)
		if errdefs.KindOf(err) != errdefs.KindUnknown {
			return nil, err
		}
		return nil, fmt.Errorf("%s for container %q: %w", step, spec.Name, err)
	}
	// How long each step took goes to the log line of the creation
	// (bench StartBreakdown reads it).
	stepStart := time.Now()
	var steps []any
	step := func(name string) {
		steps = append(steps, name, time.Since(stepStart))
		stepStart = time.Now()
	}
	// The order below is the crash-safety contract (docs/architecture.md):
	// the record (state creating) is written before any side effect, so
	// Restore can undo a creation a crash cut short, and each
	// failpoint.Hit follows the step it names, for the crash tests. fail
	// undoes whatever was made so far.
	if err := m.table.Add(c); err != nil {
		return fail("record container", err)
	}
	step("record")
	failpoint.Hit("container.after-record")
	volumeSources, err := m.mountImageVolumes(c, volumeIDs)
	if err != nil {
		return fail("mount image volumes", err)
	}
	storeName := fmt.Sprintf("%s_%s_%s_%s", spec.Name, sb.Spec.Name, sb.Spec.Namespace, id[:12])
	if c.Rootfs, err = m.createRootfs(sb, img.ID, id, storeName); err != nil {
		return fail("create rootfs", err)
	}
	step("rootfs")
	failpoint.Hit("container.after-rootfs")
	if spec.Restore != nil {
		if err := m.prepareRestore(c); err != nil {
			return fail("unpack checkpoint archive", err)
		}
	}
	oc, s, what, err := m.runtimeSpec(ctx, c, sb, img, volumeSources)
	if err != nil {
		return fail(what, err)
	}
	if err := writeBundle(c.Bundle, s); err != nil {
		return fail("write bundle", err)
	}
	step("bundle")
	failpoint.Hit("container.after-bundle")
	if what, err := createLog(sb.Spec.LogDirectory, spec.LogPath, c.LogPath); err != nil {
		return fail(what, err)
	}
	if spec.Restore != nil {
		// `runc restore` creates and starts at once: StartContainer does it.
		log.Info("container created from checkpoint; its start restores it", "archive", spec.Restore.Archive, "from", spec.Restore.FromID)
		return c, nil
	}
	mc, err := mon.Create(ctx, monitor.CreateOptions{ID: id, Bundle: c.Bundle, LogPath: c.LogPath, Terminal: oc.TTY, Stdin: oc.Stdin, LeaveStdinOpen: oc.Stdin && !oc.StdinOnce})
	if err != nil {
		return fail("create container", err)
	}
	c.Monitor = mc
	step("runtime")
	failpoint.Hit("container.after-conmon-create")
	log.Info("container created", append([]any{"image", spec.Image, "pid", mc.Pid}, steps...)...)
	return c, nil
}

// runtimeSpec builds the container's OCI spec, with the CDI devices and
// NRI adjustments applied, and records its stop signal and the spec's
// facts in c. On failure it says which step failed.
func (m *Manager) runtimeSpec(ctx context.Context, c *Container, sb *sandbox.Sandbox, img *images.Image, volumeSources map[int]string) (*ocispec.Container, *specs.Spec, string, error) {
	oc, err := m.ociContainer(c, sb, img, volumeSources)
	if err != nil {
		return nil, nil, "prepare spec", err
	}
	c.StopSignal = stopSignal(oc.Image.StopSignal, c.Spec.StopSignal)
	s, err := ocispec.Build(oc, m.opts.Spec)
	if err != nil {
		return nil, nil, "build OCI spec", err
	}
	if err := m.extendSpec(ctx, c, s); err != nil {
		return nil, nil, "apply CDI devices and NRI adjustments", err
	}
	// After the plugins' adjustments: the mounts they add are idmapped
	// too, and the facts recorded are those of the final spec.
	if err := m.applyUserns(c, sb, s); err != nil {
		return nil, nil, "prepare user namespace mounts", err
	}
	if m.opts.SandboxedHandlers[c.Handler] {
		podsandbox.Annotate(s, sb.ID, c.Spec.PIDMode == string(sandbox.ModePod))
	}
	c.recordSpecFacts(s)
	return oc, s, "", nil
}

// imageOf returns the local image the container runs; one not pulled is
// NotFound, named as the kubelet asked for it.
func (m *Manager) imageOf(spec Spec) (*images.Image, error) {
	img, err := m.opts.Images.Status(spec.Image)
	if err != nil {
		if errdefs.KindOf(err) == errdefs.KindNotFound {
			name := fmt.Sprintf("%q", spec.Image)
			if spec.UserImage != "" && spec.UserImage != spec.Image {
				name += fmt.Sprintf(" (%q)", spec.UserImage)
			}
			return nil, errdefs.NotFound("image %s is not present on this node; pull it first: %v", name, err)
		}
		return nil, err
	}
	return img, nil
}

// stopSignal is the signal that stops the container: the one the CRI
// config asks for, else the image's, else (neither, or unknown) SIGTERM.
func stopSignal(image, requested string) int {
	stop := image
	if requested != "" {
		stop = requested
	}
	if sig, err := ocispec.StopSignal(stop); err == nil {
		return int(sig)
	}
	return int(syscall.SIGTERM)
}

// createLog creates the container's log file in the pod's log directory,
// or the directory of the log path floe chose; on failure it says which
// step failed.
func createLog(logDirectory, requested, logPath string) (string, error) {
	if logDirectory != "" && requested != "" {
		if err := createLogFile(logDirectory, requested); err != nil {
			return "create log file", err
		}
		return "", nil
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return "create log directory", err
	}
	return "", nil
}

// ociContainer completes the CRI-derived description with what comes
// from the image, the rootfs and the pod.
func (m *Manager) ociContainer(c *Container, sb *sandbox.Sandbox, img *images.Image, volumeSources map[int]string) (*ocispec.Container, error) {
	oc := c.Spec.OCI
	oc.ID = c.ID
	// The record's mounts stay as requested; the spec gets the host
	// paths the image volumes resolved to.
	oc.Mounts = slices.Clone(oc.Mounts)
	for i, src := range volumeSources {
		oc.Mounts[i].HostPath = src
	}
	oc.Rootfs = c.Rootfs
	if cfg := img.Config; cfg != nil {
		oc.Image = ocispec.ImageConfig{
			Entrypoint: cfg.Config.Entrypoint, Cmd: cfg.Config.Cmd, Env: cfg.Config.Env,
			WorkingDir: cfg.Config.WorkingDir, User: cfg.Config.User, StopSignal: cfg.Config.StopSignal,
		}
	}
	hostname := sb.Spec.Hostname
	if hostname == "" {
		hostname = sb.Spec.Name
	}
	if sb.Spec.NetworkMode == sandbox.ModeNode {
		hostname, _ = os.Hostname()
	}
	oc.Hostname = hostname
	files := sb.Files()
	oc.PodFiles = ocispec.PodFiles{ResolvConf: files.ResolvConf, Hostname: files.Hostname, Shm: files.Shm}
	// The kubelet manages /etc/hosts itself (it sends a mount); a
	// host-network pod sees the node's.
	if sb.Spec.NetworkMode != sandbox.ModeNode {
		oc.PodFiles.Hosts = files.Hosts
	}
	ns := ocispec.Namespaces{
		NetPath: sb.NetnsPath, IPCPath: sb.IPCPath, UTSPath: sb.UTSPath,
		HostNetwork: sb.Spec.NetworkMode == sandbox.ModeNode,
		HostIPC:     sb.Spec.IPCMode == sandbox.ModeNode,
	}
	sandboxed := m.opts.SandboxedHandlers[c.Handler]
	switch pid := c.Spec.PIDMode; {
	case sandboxed && pid == string(sandbox.ModePod):
		// The sandbox's own kernel keeps the pod's PID namespace
		// (podsandbox.Annotate drops the spec's).
	case sandboxed && (pid == string(sandbox.ModeNode) || pid == string(sandbox.ModeTarget)):
		return nil, errdefs.FailedPrecondition("config.linux.security_context.namespace_options.pid: runtime handler %q runs the pod's processes in its own kernel; a %s PID namespace cannot be joined", c.Handler, pid)
	case pid == string(sandbox.ModeNode):
		ns.HostPID = true
	case pid == string(sandbox.ModePod):
		if sb.PodInit == nil {
			return nil, errdefs.FailedPrecondition("pod %s shares its PID namespace but has no init process", sb.ID)
		}
		ns.PIDPath = sb.PodInit.NsPath()
	case pid == string(sandbox.ModeTarget):
		target, err := m.Get(c.Spec.TargetID)
		if err != nil || target.Monitor == nil || target.State != StateRunning {
			return nil, errdefs.FailedPrecondition("target container %q of the PID namespace is not running", c.Spec.TargetID)
		}
		ns.PIDPath = fmt.Sprintf("/proc/%d/ns/pid", target.Monitor.Pid)
	}
	usernsNamespaces(sb, &ns)
	oc.Namespaces = ns
	parent, err := cgroups.ParentPath(m.opts.CgroupDriver, sb.Spec.CgroupParent)
	if err != nil {
		return nil, errdefs.FailedPrecondition("%v", err)
	}
	if oc.CgroupsPath, err = cgroups.ContainerPath(m.opts.CgroupDriver, parent, "floe", c.ID); err != nil {
		return nil, err
	}
	return &oc, nil
}

// logPath is <pod log dir>/<container log path> as the kubelet asks, or
// a file in the bundle when the kubelet asked for none.
func logPath(sb *sandbox.Sandbox, spec Spec, id, bundle string) string {
	if sb.Spec.LogDirectory != "" && spec.LogPath != "" {
		return filepath.Join(sb.Spec.LogDirectory, spec.LogPath)
	}
	return filepath.Join(bundle, "container.log")
}

// imageName is the image a container reports (CRI ContainerStatus.image):
// the name the user wrote, which the kubelet sends as
// user_specified_image and compares with the pod spec to show the image
// as updated. Without it (crictl, critest), the name the request used, or
// the image's first tag when the request named the image by its ID.
func imageName(spec Spec, img *images.Image) string {
	if spec.UserImage != "" {
		return spec.UserImage
	}
	if img.IsIDOf(spec.Image) && len(img.RepoTags) > 0 {
		return img.RepoTags[0]
	}
	return spec.Image
}

func writeBundle(dir string, s *specs.Spec) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600)
}

// undo releases what a failed or interrupted creation made.
func (m *Manager) undo(c *Container) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.release(ctx, c); err != nil {
		m.log.Error("undo container: release failed; the record is kept so a restart retries", "container", c.ID, "err", err)
		return
	}
	_, err := m.update(c.ID, removed)
	// Not found: the creation failed before its first record.
	if err != nil && errdefs.KindOf(err) != errdefs.KindNotFound {
		m.log.Error("undo container: delete record", "container", c.ID, "err", err)
	}
	// Plugins may have seen its CreateContainer.
	m.hooks.RemoveContainer(ctx, c)
}

// release deletes the runc container (killing it), its rootfs and bundle.
// Each step is idempotent.
func (m *Manager) release(ctx context.Context, c *Container) error {
	if err := m.releaseRuntime(ctx, c); err != nil {
		return err
	}
	if err := m.releaseMounts(c); err != nil {
		return err
	}
	return m.releaseFiles(ctx, c)
}

// releaseRuntime deletes the runc container, killing it if needed.
func (m *Manager) releaseRuntime(ctx context.Context, c *Container) error {
	if mon, ok := m.opts.Runtimes[c.Handler]; ok {
		mc := c.Monitor
		if mc == nil {
			// conmon may have got as far as runc create before a crash;
			// Delete then waits for it and deletes what it made.
			mc = monitor.FromBundle(c.ID, c.Bundle)
		}
		if err := mon.Delete(ctx, mc); err != nil {
			return fmt.Errorf("delete runtime container: %w", err)
		}
	}
	return nil
}

// resolve finds a container by id or unique prefix.
func (m *Manager) resolve(idOrPrefix string) (*Container, error) { return m.table.Get(idOrPrefix) }

// Get returns a copy of one container.
func (m *Manager) Get(idOrPrefix string) (*Container, error) { return m.resolve(idOrPrefix) }

func (m *Manager) monitorFor(c *Container) (Runtime, error) {
	mon, ok := m.opts.Runtimes[c.Handler]
	if !ok || c.Monitor == nil {
		return nil, errdefs.FailedPrecondition("container %s has no monitor", c.ID)
	}
	return mon, nil
}

// Start starts a created container and follows its exit.
func (m *Manager) Start(ctx context.Context, idOrPrefix string) error {
	c, err := m.resolve(idOrPrefix)
	if err != nil {
		return err
	}
	defer m.table.Lock(c.ID)()
	if c, err = m.resolve(c.ID); err != nil {
		return err
	}
	if c.State != StateCreated {
		return errdefs.FailedPrecondition("container %s is %s; only a created container can be started", c.ID, c.State)
	}
	if c.RestoreImages != "" && c.Monitor == nil {
		return m.startRestore(ctx, c)
	}
	mon, err := m.monitorFor(c)
	if err != nil {
		return err
	}
	// The caller going away (a closed connection, a kubelet timeout) must
	// not kill `runc start` midway: once runc has opened the exec fifo the
	// process runs, and a start cut short there would leave floe recording
	// "created" for a running container. The runtime's command timeout
	// still bounds it.
	if err := m.hooks.StartContainer(ctx, c); err != nil {
		return err
	}
	if err := mon.Start(context.WithoutCancel(ctx), c.Monitor); err != nil && !m.startedMeanwhile(ctx, c, mon) {
		return fmt.Errorf("start container %s: %w", c.ID, err)
	}
	failpoint.Hit("container.after-start")
	// Before follow: the exit's event must come after this one.
	if _, err := m.update(c.ID, started); err != nil {
		return err
	}
	m.follow(c.ID, mon, c.Monitor)
	m.log.Info("container started", "container", c.ID, "pod", c.SandboxID)
	m.hooks.PostStartContainer(ctx, c)
	return nil
}

// startRestore is Start of a container created from a checkpoint, under
// its operation lock.
func (m *Manager) startRestore(ctx context.Context, c *Container) error {
	mon, ok := m.opts.Runtimes[c.Handler]
	if !ok {
		return errdefs.FailedPrecondition("runtime handler %q of container %s has no monitor", c.Handler, c.ID)
	}
	if err := m.hooks.StartContainer(ctx, c); err != nil {
		return err
	}
	mc, err := m.startRestored(context.WithoutCancel(ctx), c, mon)
	if err != nil {
		return err
	}
	if _, err := m.update(c.ID, func(c *Container) error {
		c.Monitor = mc
		return started(c)
	}); err != nil {
		return err
	}
	c.Monitor = mc
	m.follow(c.ID, mon, mc)
	m.log.Info("container started", "container", c.ID, "pod", c.SandboxID, "restored", true)
	m.hooks.PostStartContainer(ctx, c)
	return nil
}

// startedMeanwhile says whether a container whose start failed runs all
// the same: the `runc start` of a StartContainer floe did not live to
// see outlives the crash and may land after the restart found the
// container created. The kubelet's retry then finds it running and
// records that, rather than failing for ever.
func (m *Manager) startedMeanwhile(ctx context.Context, c *Container, mon Runtime) bool {
	st, _, err := mon.State(ctx, c.ID)
	if err != nil || st != monitor.StatusRunning {
		return false
	}
	m.log.Warn("container was already started by an earlier StartContainer floe did not live to record; recording it running", "container", c.ID, "pod", c.SandboxID)
	return true
}

// follow waits for the container's exit in the background and records it.
func (m *Manager) follow(id string, mon Runtime, mc *monitor.Container) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-m.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		exit, err := mon.Wait(ctx, mc)
		if ctx.Err() != nil {
			return // daemon shutting down; the next start picks the exit up
		}
		m.recordExit(id, exit, err)
	}()
}

// started is the update of a container the runtime started.
func started(c *Container) error {
	c.State = StateRunning
	c.StartedAt = time.Now().UnixNano()
	return nil
}

// removing is the update that hides a removed container whose files
// the remover still deletes.
func removing(c *Container) error {
	c.State = stateRemoving
	return nil
}

// removed is the update that deletes a container's record.
func removed(c *Container) error {
	c.State = stateRemoved
	return nil
}

// recordExit stores how a container ended.
func (m *Manager) recordExit(id string, exit *monitor.Exit, waitErr error) {
	defer m.table.Lock(id)()
	c, err := m.update(id, func(c *Container) error {
		if c.State == StateExited {
			return errUnchanged
		}
		c.State = StateExited
		switch {
		case exit != nil:
			c.ExitCode = int32(exit.Code)
			c.FinishedAt = exit.FinishedAt.UnixNano()
			c.Reason = exit.Reason()
		default:
			c.ExitCode = -1
			c.FinishedAt = time.Now().UnixNano()
			c.Reason = "Error"
			c.Message = fmt.Sprintf("exit status unknown: %v", waitErr)
		}
		return nil
	})
	switch {
	case errors.Is(err, errUnchanged), errdefs.KindOf(err) == errdefs.KindNotFound:
		return // recorded before, or removed meanwhile
	case err != nil:
		// The exit file stays: the next start of floe records it.
		m.log.Error("record container exit", "container", id, "err", err)
		return
	}
	if m.opts.OnExit != nil {
		m.opts.OnExit(c.Reason, exit == nil)
	}
	m.hooks.StopContainer(context.Background(), c)
	m.log.Info("container exited", "container", id, "pod", c.SandboxID, "code", c.ExitCode, "reason", c.Reason)
}

// Stop stops a container with its stop signal, then SIGKILL after timeout.
// Stopping an unknown or exited container succeeds.
func (m *Manager) Stop(ctx context.Context, idOrPrefix string, timeout time.Duration) error {
	c, err := m.table.Find(idOrPrefix)
	if c == nil {
		return err
	}
	if c.State == StateExited || c.Monitor == nil {
		return nil
	}
	mon, err := m.monitorFor(c)
	if err != nil {
		return err
	}
	exit, err := mon.Stop(ctx, c.Monitor, syscall.Signal(c.StopSignal), timeout)
	switch {
	case errors.Is(err, monitor.ErrMonitorLost):
		// Its conmon died without an exit file (killed, OOM-killed; a
		// created container has no follower to notice): the container
		// was killed all the same and nobody will ever write its exit.
		// It is recorded exited with the exit unknown, as follow does
		// for a running one; failing here would fail every stop of its
		// pod for ever.
		m.log.Warn("container stopped without its monitor; exit status unknown", "container", c.ID, "pod", c.SandboxID, "err", err)
	case err != nil:
		return fmt.Errorf("stop container %s: %w", c.ID, err)
	}
	m.recordExit(c.ID, exit, err)
	return nil
}

// Remove kills the container if needed and deletes it with its rootfs,
// bundle and record. Removing an unknown container succeeds. It answers
// once the runtime container is deleted and the record says "removing":
// the container is then gone for every caller and its name is free; the
// remover deletes the writable layer, the bundle and the record after.
func (m *Manager) Remove(ctx context.Context, idOrPrefix string) error {
	c, err := m.table.Find(idOrPrefix)
	if c == nil {
		return err
	}
	if err := m.Stop(ctx, c.ID, 0); err != nil {
		return err
	}
	defer m.table.Lock(c.ID)()
	if c, err = m.resolve(c.ID); err != nil {
		return nil
	}
	// No process of the container, and none of its mounts outside the
	// rootfs, may outlive the answer.
	if err := m.releaseRuntime(ctx, c); err != nil {
		return fmt.Errorf("remove container %s: %w", c.ID, err)
	}
	if err := m.releaseMounts(c); err != nil {
		return fmt.Errorf("remove container %s: %w", c.ID, err)
	}
	if _, err := m.update(c.ID, removing); err != nil {
		return err
	}
	failpoint.Hit("container.remove.after-record-removing")
	lsm.ReleaseLabel(c.Spec.OCI.LSM.SELinuxLabel)
	m.queueRemoval(c.ID)
	m.hooks.RemoveContainer(ctx, c)
	m.log.Info("container removed", "container", c.ID, "pod", c.SandboxID)
	return nil
}

// StopPod stops every container of a pod (for StopPodSandbox).
func (m *Manager) StopPod(ctx context.Context, sandboxID string, timeout time.Duration) error {
	var errs []error
	for _, c := range m.List(Filter{SandboxID: sandboxID}) {
		if c.SandboxID == sandboxID {
			errs = append(errs, m.Stop(ctx, c.ID, timeout))
		}
	}
	return errors.Join(errs...)
}

// RemovePod removes every container of a pod (for RemovePodSandbox).
func (m *Manager) RemovePod(ctx context.Context, sandboxID string) error {
	var errs []error
	victims := m.table.IDs(func(c *Container) bool { return c.SandboxID == sandboxID })
	for _, id := range victims {
		errs = append(errs, m.Remove(ctx, id))
	}
	return errors.Join(errs...)
}

// List returns copies of the claimed containers matching f, oldest first.
func (m *Manager) List(f Filter) []*Container {
	return m.table.List(f.match)
}

// View is List for read-only callers: the records themselves, which must
// not be modified or kept (see objects.Table.View). ListContainers with
// hundreds of containers then copies none of them (1.4 kB each).
func (m *Manager) View(f Filter) []*Container {
	return m.table.View(f.match)
}

// GetRunning returns a copy of a container that runs, or a
// FailedPrecondition naming the action that needs it running.
func (m *Manager) GetRunning(idOrPrefix, action string) (*Container, error) {
	c, err := m.resolve(idOrPrefix)
	if err != nil {
		return nil, err
	}
	if c.State != StateRunning {
		return nil, errdefs.FailedPrecondition("container %s is %s; %s needs a running container", c.ID, c.State, action)
	}
	return c, nil
}

// running returns the container and its monitor when it runs.
func (m *Manager) running(idOrPrefix, action string) (*Container, Runtime, error) {
	c, err := m.GetRunning(idOrPrefix, action)
	if err != nil {
		return nil, nil, err
	}
	mon, err := m.monitorFor(c)
	return c, mon, err
}

// lockedRunning is running under the container's operation lock, which
// the caller releases with unlock (for changes of a running container).
func (m *Manager) lockedRunning(idOrPrefix, action string) (c *Container, mon Runtime, unlock func(), err error) {
	c, err = m.resolve(idOrPrefix)
	if err != nil {
		return nil, nil, nil, err
	}
	unlock = m.table.Lock(c.ID)
	if c, mon, err = m.running(c.ID, action); err != nil {
		unlock()
		return nil, nil, nil, err
	}
	return c, mon, unlock, nil
}

// ExecSync runs argv in a running container.
func (m *Manager) ExecSync(ctx context.Context, idOrPrefix string, argv []string, timeout time.Duration) (*monitor.ExecResult, error) {
	if len(argv) == 0 {
		return nil, errdefs.InvalidArgument("cmd", "must not be empty")
	}
	c, mon, err := m.running(idOrPrefix, "exec")
	if err != nil {
		return nil, err
	}
	s, err := readBundle(c.Bundle)
	if err != nil {
		return nil, err
	}
	proc, err := ocispec.ExecProcess(s, argv, false)
	if err != nil {
		return nil, err
	}
	return mon.ExecSync(ctx, c.Monitor, proc, timeout)
}

func readBundle(dir string) (*specs.Spec, error) {
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("read bundle spec: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode bundle spec: %w", err)
	}
	return &s, nil
}

// UpdateResources applies new limits to a running container.
func (m *Manager) UpdateResources(ctx context.Context, idOrPrefix string, r ocispec.Resources) error {
	// Under the container's lock, like every change of its record: an
	// exit recorded between reading the record and saving it would
	// otherwise be overwritten with "running".
	c, mon, unlock, err := m.lockedRunning(idOrPrefix, "a resource update")
	if err != nil {
		return err
	}
	defer unlock()
	res, dropped, err := ocispec.LinuxResources(r, m.opts.Spec.Cgroups)
	if err != nil {
		return err
	}
	ocispec.LogDropped(m.log.With("container", c.ID, "pod", c.SandboxID), dropped)
	if res, err = m.hooks.UpdateContainer(ctx, c, res); err != nil {
		return err
	}
	if err := mon.Update(ctx, c.Monitor, res); err != nil {
		return fmt.Errorf("update container %s: %w", c.ID, err)
	}
	updated, err := m.update(c.ID, func(c *Container) error {
		c.Spec.OCI.Resources = r
		return nil
	})
	if err == nil {
		m.hooks.PostUpdateContainer(ctx, updated)
	}
	return err
}

// ReopenLog makes conmon reopen the container's log after rotation.
func (m *Manager) ReopenLog(ctx context.Context, idOrPrefix string) error {
	c, mon, err := m.running(idOrPrefix, "reopening the log")
	if err != nil {
		return err
	}
	return mon.ReopenLog(ctx, c.Monitor)
}

// restoreStarted catches a start that runc carried out after the daemon
// died before recording it: the container runs, so it is recorded running
// (started at the restart; the real moment is lost) and followed. Left
// "created", the kubelet would try to start it again and fail forever.
//
// A created container the runtime no longer knows (the node rebooted: its
// state, bundle and mounts lived under /run; or someone deleted it) can
// never start: it is recorded exited with the reason, so the kubelet
// removes it and makes a new one instead of failing StartContainer on it
// for ever.
func (m *Manager) restoreStarted(ctx context.Context, c *Container, mon Runtime) {
	st, _, err := mon.State(ctx, c.ID)
	if errdefs.KindOf(err) == errdefs.KindNotFound {
		m.log.Warn("created container is gone from its runtime (node reboot?); recording it exited", "container", c.ID, "pod", c.SandboxID, "err", err)
		m.recordExit(c.ID, nil, fmt.Errorf("created before floe restarted, and its runtime no longer has it (node rebooted, or its state was deleted): %w", err))
		return
	}
	if err != nil || (st != monitor.StatusRunning && st != monitor.StatusStopped) {
		return
	}
	if _, err := m.update(c.ID, started); err != nil {
		m.log.Error("record a container started while floe was down", "container", c.ID, "err", err)
		return
	}
	m.log.Warn("container was started by a StartContainer the daemon did not live to record; it is running", "container", c.ID, "runtimeState", st)
	m.follow(c.ID, mon, c.Monitor)
}

// restoreProcess catches up with what the container's process did while
// floe was down: its exit, or a start floe did not live to record; a
// running one is followed again.
func (m *Manager) restoreProcess(ctx context.Context, c *Container) {
	if c.State != StateRunning && c.State != StateCreated {
		return
	}
	mon, err := m.monitorFor(c)
	if err != nil {
		return
	}
	exit, err := mon.ExitStatus(c.Monitor)
	switch {
	case err != nil:
		m.log.Error("read container exit after restart", "container", c.ID, "err", err)
	case exit != nil:
		m.recordExit(c.ID, exit, nil)
	case c.State == StateRunning:
		m.follow(c.ID, mon, c.Monitor)
	case c.State == StateCreated:
		m.restoreStarted(ctx, c, mon)
	}
}

// Restore loads the database after a (re)start: interrupted creations are
// undone, containers that exited while floe was down get their exit from
// conmon's exit file, running ones are followed again.
func (m *Manager) Restore(ctx context.Context) error {
	records, err := m.table.Load()
	if err != nil {
		return err
	}
	for _, c := range records {
		// The image store's mounts outlived floe; it only has to learn
		// again who holds them, before an undo below releases any.
		for _, im := range c.ImageMounts {
			m.opts.Images.AdoptImageMount(im.ImageID, c.ID)
		}
	}
	for _, c := range records {
		m.table.Adopt(c, m.abandon)
		switch c.State {
		case StateCreating:
			m.log.Warn("undoing a container whose creation was interrupted", "container", c.ID)
			m.undo(c)
			continue
		case stateRemoving:
			m.log.Info("finishing a removal interrupted by the restart", "container", c.ID)
			m.queueRemoval(c.ID)
			continue
		}
		m.backfillSpecFacts(c)
		lsm.ReserveLabel(c.Spec.OCI.LSM.SELinuxLabel)
		m.restoreProcess(ctx, c)
	}
	m.log.Info("restored containers", "count", len(records))
	return nil
}
