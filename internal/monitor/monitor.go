// Package monitor runs containers the way CRI-O does: each container gets a
// conmon process that calls the OCI runtime (runc) to create it, holds its
// stdio, writes its output to a CRI-format log file and, when the container
// exits, writes the exit code to <exit dir>/<id>. conmon double-forks, so
// containers and their monitors outlive the floe daemon; floe picks their
// exits up from the exit files, watched with inotify, whenever it runs.
//
// Container records (see Container) are plain data the caller persists;
// every operation works from the record, so a restarted daemon can carry on
// where the previous one stopped.
package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/procstat"
	"github.com/fsnotify/fsnotify"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Config configures a Monitor.
type Config struct {
	ConmonPath  string // default /usr/bin/conmon
	RuntimePath string // default /usr/sbin/runc
	// RuntimeRoot is runc's --root; empty keeps runc's default (/run/runc
	// for root), so `runc list` on the host shows floe's containers.
	RuntimeRoot string
	// SystemdCgroup makes runc use the systemd cgroup driver
	// (cgroupsPath in slice:prefix:name form).
	SystemdCgroup bool
	ExitDir       string // conmon writes <ExitDir>/<id> when a container exits
	SocketDir     string // conmon's attach sockets: <SocketDir>/<id>/attach
	// LogSizeMax bounds a container's log file; conmon truncates it when
	// exceeded. 0 means unbounded.
	LogSizeMax int64
	// CRIUPath is the criu runc checkpoints and restores with (runc's
	// global --criu); empty leaves runc's default (criu in PATH). Only
	// for runc: other runtimes do not take the flag.
	CRIUPath string
	// CommandTimeout bounds each runc invocation (default 30s).
	CommandTimeout time.Duration
	// RuntimeArgs are global flags for every runtime command (the
	// handler's runtime_args).
	RuntimeArgs []string
	// Sandboxed: the runtime runs a pod's containers in one sandbox and
	// reports its pid for each (runsc); conmon then runs it through
	// ShimPath (floe-pod-init or floe, see internal/podinit/runtimeshim.go
	// and sandboxed.go).
	Sandboxed bool
	ShimPath  string
	Log       *slog.Logger
}

// Container is what the caller keeps about a created container: enough to
// find its monitor, log, exit file and cgroup again after a restart.
type Container struct {
	ID        string    `json:"id"`
	Bundle    string    `json:"bundle"`
	LogPath   string    `json:"logPath"`
	Pid       int       `json:"pid"`
	ConmonPid int       `json:"conmonPid"`
	CreatedAt time.Time `json:"createdAt"`
	// MemoryCgroup is the host directory of the container's memory cgroup;
	// its OOM-kill counter tells whether the container was OOM-killed.
	MemoryCgroup string `json:"memoryCgroup,omitempty"`
}

// Exit is how a container ended.
type Exit struct {
	Code       int
	FinishedAt time.Time
	OOMKilled  bool
}

// Reason is the CRI reason for the exit.
func (e Exit) Reason() string {
	switch {
	case e.OOMKilled:
		return "OOMKilled"
	case e.Code == 0:
		return "Completed"
	default:
		return "Error"
	}
}

// Monitor starts containers through conmon and watches their exit files.
type Monitor struct {
	cfg Config
	log *slog.Logger

	watcher *fsnotify.Watcher
	stop    chan struct{}
	wg      sync.WaitGroup

	mu      sync.Mutex
	waiters map[string][]chan struct{} // container id -> woken on its exit file changes
	exits   map[string]Exit            // exits already read, so OOM status survives runc delete
	// deleted are containers Stop already deleted from runc, so Delete
	// need not run runc again (lost on restart: Delete then runs it once).
	deleted map[string]bool
}

// fallbackRecheck is how often a waiter looks at its exit file (and whether
// its conmon still lives) without being woken, in case an inotify event was
// lost or conmon died. It is a safety net, not the mechanism. A variable
// for tests.
var fallbackRecheck = 30 * time.Second

// ErrMonitorLost is returned (wrapped) by Wait when a container's conmon is
// gone without having written an exit file (it was killed): the exit code
// is unknown and the container may still run unmonitored.
var ErrMonitorLost = errors.New("container monitor exited without an exit file")

// New checks the configuration, creates the exit and socket directories and
// starts watching the exit directory. Close stops the watcher.
func New(cfg Config) (*Monitor, error) {
	if cfg.ConmonPath == "" {
		cfg.ConmonPath = "/usr/bin/conmon"
	}
	if cfg.RuntimePath == "" {
		cfg.RuntimePath = "/usr/sbin/runc"
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if err := checkShim(cfg); err != nil {
		return nil, err
	}
	if cfg.ExitDir == "" || cfg.SocketDir == "" {
		return nil, errors.New("monitor: ExitDir and SocketDir are required")
	}
	for _, p := range []string{cfg.ConmonPath, cfg.RuntimePath} {
		if _, err := exec.LookPath(p); err != nil {
			return nil, fmt.Errorf("monitor: %w", err)
		}
	}
	for _, d := range []string{cfg.ExitDir, cfg.SocketDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("monitor: create %s: %w", d, err)
		}
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("monitor: inotify: %w", err)
	}
	if err := w.Add(cfg.ExitDir); err != nil {
		w.Close()
		return nil, fmt.Errorf("monitor: watch %s: %w", cfg.ExitDir, err)
	}
	m := &Monitor{
		cfg: cfg, log: cfg.Log, watcher: w, stop: make(chan struct{}),
		waiters: map[string][]chan struct{}{}, exits: map[string]Exit{}, deleted: map[string]bool{},
	}
	m.wg.Add(1)
	go m.watch()
	return m, nil
}

// Close stops watching exit files. Containers keep running; pending Waits
// return an error.
func (m *Monitor) Close() error {
	select {
	case <-m.stop:
		return nil
	default:
	}
	close(m.stop)
	err := m.watcher.Close()
	m.wg.Wait()
	return err
}

// watch wakes the waiters of a container whenever its exit file is
// created or written. It is the only reader of the watcher.
func (m *Monitor) watch() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case ev, ok := <-m.watcher.Events:
			if !ok {
				return
			}
			if ev.Op&(fsnotify.Create|fsnotify.Write) != 0 {
				m.wake(filepath.Base(ev.Name))
			}
		case err, ok := <-m.watcher.Errors:
			if !ok {
				return
			}
			// An overflow loses events: wake everyone to re-check.
			m.log.Warn("exit file watcher", "error", err)
			m.wakeAll()
		}
	}
}

func (m *Monitor) wake(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ch := range m.waiters[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (m *Monitor) wakeAll() {
	m.mu.Lock()
	ids := make([]string, 0, len(m.waiters))
	for id := range m.waiters {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	for _, id := range ids {
		m.wake(id)
	}
}

func (m *Monitor) addWaiter(id string) chan struct{} {
	ch := make(chan struct{}, 1)
	m.mu.Lock()
	m.waiters[id] = append(m.waiters[id], ch)
	m.mu.Unlock()
	return ch
}

func (m *Monitor) removeWaiter(id string, ch chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	list := m.waiters[id]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(m.waiters, id)
	} else {
		m.waiters[id] = list
	}
}

func (m *Monitor) exitFile(id string) string { return filepath.Join(m.cfg.ExitDir, id) }

// ExitStatus returns the container's exit, or nil if it has not exited.
func (m *Monitor) ExitStatus(c *Container) (*Exit, error) {
	m.mu.Lock()
	if e, ok := m.exits[c.ID]; ok {
		m.mu.Unlock()
		return &e, nil
	}
	m.mu.Unlock()
	path := m.exitFile(c.ID)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: read exit file: %w", c.ID, err)
	}
	text := strings.TrimSpace(string(data))
	if text == "" {
		return nil, nil // created, not yet written
	}
	code, err := strconv.Atoi(text)
	if err != nil {
		return nil, fmt.Errorf("container %s: exit file %s holds %q", c.ID, path, text)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("container %s: stat exit file: %w", c.ID, err)
	}
	e := Exit{Code: code, FinishedAt: st.ModTime(), OOMKilled: oomKilled(c.MemoryCgroup) || conmonSawOOM(c.Bundle)}
	m.mu.Lock()
	m.exits[c.ID] = e
	m.mu.Unlock()
	m.log.Debug("container exited", "container", c.ID, "code", e.Code, "reason", e.Reason())
	return &e, nil
}

// Wait blocks until the container exits, ctx ends or the monitor closes.
func (m *Monitor) Wait(ctx context.Context, c *Container) (*Exit, error) {
	ch := m.addWaiter(c.ID)
	defer m.removeWaiter(c.ID, ch)
	recheck := time.NewTicker(fallbackRecheck)
	defer recheck.Stop()
	for {
		// Registered before looking, so an exit written in between still
		// wakes us.
		e, err := m.ExitStatus(c)
		if err != nil || e != nil {
			return e, err
		}
		if c.ConmonPid > 0 && !conmonAlive(c) {
			// conmon may have written the file just before exiting.
			if e, err := m.ExitStatus(c); err != nil || e != nil {
				return e, err
			}
			return nil, fmt.Errorf("container %s: conmon %d: %w", c.ID, c.ConmonPid, ErrMonitorLost)
		}
		select {
		case <-ch:
		case <-recheck.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("container %s: wait for exit: %w", c.ID, ctx.Err())
		case <-m.stop:
			return nil, fmt.Errorf("container %s: wait for exit: monitor closed", c.ID)
		}
	}
}

// oomKilled reads the OOM-kill counter of a memory cgroup (v1
// memory.oom_control or v2 memory.events). A missing cgroup reads false.
func oomKilled(memCgroup string) bool {
	if memCgroup == "" {
		return false
	}
	for _, name := range []string{"memory.oom_control", "memory.events"} {
		data, err := os.ReadFile(filepath.Join(memCgroup, name))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				return n > 0
			}
		}
	}
	return false
}

// conmonSawOOM reports whether conmon, which listens for OOM events on the
// container's cgroup itself, left its "oom" marker in the bundle (its
// working directory). It covers a cgroup already removed.
func conmonSawOOM(bundle string) bool {
	if bundle == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(bundle, "oom"))
	return err == nil
}

// memoryCgroupOf finds the host directory of pid's memory cgroup.
func memoryCgroupOf(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return ""
	}
	unified := ""
	for _, line := range strings.Split(string(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, ctrl := range strings.Split(parts[1], ",") {
			if ctrl == "memory" {
				return filepath.Join("/sys/fs/cgroup/memory", parts[2])
			}
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = filepath.Join("/sys/fs/cgroup", parts[2])
		}
	}
	if unified != "" {
		if _, err := os.Stat(filepath.Join(unified, "memory.events")); err == nil {
			return unified
		}
	}
	return ""
}

// runtime runs one runc command under the command timeout.
func (m *Monitor) runtime(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
	defer cancel()
	full := append(m.runtimeGlobalArgs(), args...)
	cmd := exec.CommandContext(ctx, m.cfg.RuntimePath, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if ctx.Err() != nil {
			return nil, fmt.Errorf("runc %s: %w (%s)", strings.Join(args, " "), ctx.Err(), msg)
		}
		if strings.Contains(msg, "does not exist") {
			return nil, errdefs.NotFound("runc %s: %s", strings.Join(args, " "), msg)
		}
		return nil, fmt.Errorf("runc %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

func (m *Monitor) runtimeGlobalArgs() []string {
	args := slices.Clone(m.cfg.RuntimeArgs)
	if m.cfg.RuntimeRoot != "" {
		// One argument: the runtime shim of sandboxed runtimes finds
		// the command as the first argument that is no flag.
		args = append(args, "--root="+m.cfg.RuntimeRoot)
	}
	if m.cfg.SystemdCgroup {
		args = append(args, "--systemd-cgroup")
	}
	if m.cfg.CRIUPath != "" {
		args = append(args, "--criu", m.cfg.CRIUPath)
	}
	return args
}

// Start starts a created container's process.
func (m *Monitor) Start(ctx context.Context, c *Container) error {
	start := m.runtime
	if m.cfg.Sandboxed {
		start = func(ctx context.Context, args ...string) ([]byte, error) {
			return nil, m.startSandboxed(ctx, c)
		}
	}
	if _, err := start(ctx, "start", c.ID); err != nil {
		return fmt.Errorf("container %s: start: %w", c.ID, err)
	}
	m.log.Debug("container started", "container", c.ID, "pid", c.Pid)
	return nil
}

// Update applies new resource limits to a running container (CRI
// UpdateContainerResources) with `runc update --resources -`.
func (m *Monitor) Update(ctx context.Context, c *Container, res *specs.LinuxResources) error {
	data, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("container %s: update: %w", c.ID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.cfg.RuntimePath, append(m.runtimeGlobalArgs(), "update", "--resources", "-", c.ID)...)
	cmd.Stdin = bytes.NewReader(data)
	cmd.WaitDelay = 2 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("container %s: runc update: %w: %s", c.ID, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Status is the runtime's view of a container.
type Status string

// Runtime states.
const (
	StatusCreated Status = "created"
	StatusRunning Status = "running"
	StatusPaused  Status = "paused"
	StatusStopped Status = "stopped"
)

// State asks runc for the container's state; a container runc does not
// know is a NotFound error.
func (m *Monitor) State(ctx context.Context, id string) (Status, int, error) {
	out, err := m.runtime(ctx, "state", id)
	if err != nil {
		return "", 0, fmt.Errorf("container %s: state: %w", id, err)
	}
	var st struct {
		Status string `json:"status"`
		Pid    int    `json:"pid"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return "", 0, fmt.Errorf("container %s: parse runc state: %w", id, err)
	}
	return Status(st.Status), st.Pid, nil
}

// Kill sends sig to the container's init, or with all to every process in
// its cgroup (needed when it shares the pod's PID namespace: killing its
// init then does not take its other processes with it). A container that
// has already stopped is not an error.
func (m *Monitor) Kill(ctx context.Context, c *Container, sig syscall.Signal, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	args = append(args, c.ID, strconv.Itoa(int(sig)))
	_, err := m.runtime(ctx, args...)
	if err != nil && (strings.Contains(err.Error(), "not running") || strings.Contains(err.Error(), "process already finished")) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("container %s: kill %v: %w", c.ID, sig, err)
	}
	return nil
}

// kill ends the container for good: SIGKILL to every process in it, or,
// when the runtime will not signal it, `delete --force`. runsc cannot
// signal a container that was created but never started (a failed
// StartContainer: it has no process yet), and a runtime may refuse a kill
// for reasons of its own; a stop that gave up there would leave the pod
// impossible to tear down. The forced delete ends the container's init,
// so conmon still writes its exit; the container is then gone from the
// runtime, which Delete is told of.
func (m *Monitor) kill(ctx context.Context, c *Container) error {
	killErr := m.Kill(ctx, c, syscall.SIGKILL, true)
	if killErr == nil || ctx.Err() != nil {
		return killErr
	}
	m.log.Warn("runtime will not kill the container; deleting it by force", "container", c.ID, "err", killErr)
	if _, err := m.runtime(ctx, "delete", "--force", c.ID); err != nil && errdefs.KindOf(err) != errdefs.KindNotFound {
		return fmt.Errorf("container %s: delete by force after the kill failed (%v): %w", c.ID, killErr, err)
	}
	m.mu.Lock()
	m.deleted[c.ID] = true
	m.mu.Unlock()
	return nil
}

// killGrace bounds the wait for a SIGKILLed container's exit file.
const killGrace = 10 * time.Second

// Stop sends sig (the image's stop signal), waits up to timeout for the
// container to exit, then SIGKILLs every process in it and waits for the
// exit. It returns the exit.
//
// A container it stopped is deleted from runc right away (its exit is
// read and kept first): a stopped CRI container never runs again, and
// doing it here, where the kubelet already waits for the exit, keeps a
// runc run out of RemoveContainer, as containerd's shim deletes its task
// on exit.
func (m *Monitor) Stop(ctx context.Context, c *Container, sig syscall.Signal, timeout time.Duration) (*Exit, error) {
	if e, err := m.ExitStatus(c); err != nil || e != nil {
		return e, err
	}
	e, err := m.signalAndWait(ctx, c, sig, timeout)
	m.mu.Lock()
	deleted := m.deleted[c.ID] // by kill, when the runtime would not signal it
	m.mu.Unlock()
	if err == nil && e != nil && !deleted {
		if _, derr := m.runtime(ctx, "delete", "--force", c.ID); derr != nil && errdefs.KindOf(derr) != errdefs.KindNotFound {
			// Not the stop's failure: RemoveContainer deletes it again.
			m.log.Warn("delete a stopped container from runc", "container", c.ID, "err", derr)
		} else {
			m.mu.Lock()
			m.deleted[c.ID] = true
			m.mu.Unlock()
		}
	}
	return e, err
}

// signalAndWait is Stop up to the exit.
func (m *Monitor) signalAndWait(ctx context.Context, c *Container, sig syscall.Signal, timeout time.Duration) (*Exit, error) {
	log := m.log.With("container", c.ID)
	if timeout > 0 && sig != syscall.SIGKILL {
		// PID 1 of a namespace drops signals it has no handler for. A stop
		// that arrives right after the start (critest does this) can reach
		// the process before it has set its handlers; resend once it has.
		// (A sandboxed runtime's pid is its sandbox's: the check does not
		// apply, and its own kernel delivers the signal.)
		dropped := !m.cfg.Sandboxed && signalWouldBeDropped(c.Pid, sig)
		if err := m.Kill(ctx, c, sig, false); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			// A container the runtime will not signal is killed (or
			// deleted) at once: waiting out the grace period for a
			// signal that never went would only delay that.
			log.Warn("runtime will not deliver the stop signal; killing the container", "signal", sig.String(), "err", err)
			return m.killAndWait(ctx, c)
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		var resent sync.WaitGroup
		if dropped {
			resent.Add(1)
			go func() {
				defer resent.Done()
				m.resendWhenCaught(wctx, c, sig)
			}()
		}
		e, err := m.Wait(wctx, c)
		cancel()
		resent.Wait()
		if e != nil || (err != nil && ctx.Err() != nil) {
			return e, err
		}
		log.Info("container ignored its stop signal, killing it", "signal", sig.String(), "timeout", timeout)
	}
	return m.killAndWait(ctx, c)
}

// killAndWait kills the container and waits for its exit.
func (m *Monitor) killAndWait(ctx context.Context, c *Container) (*Exit, error) {
	if err := m.kill(ctx, c); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, killGrace)
	defer cancel()
	return m.Wait(wctx, c)
}

// resendWhenCaught polls, until ctx ends, for the container's process to
// install a handler for sig, then sends sig once more.
func (m *Monitor) resendWhenCaught(ctx context.Context, c *Container, sig syscall.Signal) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		caught, ok := signalCaught(c.Pid, sig)
		if !ok {
			return // gone
		}
		if caught {
			m.log.Debug("stop signal arrived before the container's handler; resending", "container", c.ID, "signal", sig.String())
			if err := m.Kill(ctx, c, sig, false); err != nil {
				m.log.Debug("resend stop signal", "container", c.ID, "err", err)
			}
			return
		}
	}
}

// Delete removes the container from runc (killing it if it still runs),
// waits for its conmon to go, and removes the exit file and attach socket
// directory. Deleting a container runc no longer knows is not an error.
func (m *Monitor) Delete(ctx context.Context, c *Container) error {
	// A conmon already gone before the delete can neither write an exit
	// file nor finish a `runc create` any more, so one delete is enough.
	// That is the usual case (the container was stopped, its conmon went
	// with it) and saves a second runc run per RemoveContainer.
	conmonBefore := c.ConmonPid > 0 && conmonAlive(c)
	m.mu.Lock()
	stopped := m.deleted[c.ID]
	m.mu.Unlock()
	if !stopped || conmonBefore {
		if _, err := m.runtime(ctx, "delete", "--force", c.ID); err != nil && errdefs.KindOf(err) != errdefs.KindNotFound {
			return fmt.Errorf("container %s: delete: %w", c.ID, err)
		}
	}
	// conmon writes the exit file once the container is gone; wait for it
	// so the file is not recreated after we remove it. A conmon whose
	// `runc create` was still running during the delete (a creation cut
	// short by a daemon crash) then creates the container after all, so
	// delete again until that conmon is gone.
	if conmonBefore {
		deadline := time.Now().Add(killGrace)
		for {
			waitPidGone(ctx, c.ConmonPid, c.Bundle, 500*time.Millisecond)
			if !conmonAlive(c) || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			m.deleteAgain(ctx, c.ID)
		}
		// Such a conmon dies of SIGPIPE when it reports the finished create
		// to the crashed daemon, leaving the created container behind.
		m.deleteAgain(ctx, c.ID)
	}
	var errs []error
	for _, p := range []string{m.exitFile(c.ID), filepath.Join(m.cfg.SocketDir, c.ID)} {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	m.mu.Lock()
	delete(m.exits, c.ID)
	delete(m.deleted, c.ID)
	m.mu.Unlock()
	return errors.Join(errs...)
}

func (m *Monitor) deleteAgain(ctx context.Context, id string) {
	if _, err := m.runtime(ctx, "delete", "--force", id); err != nil && errdefs.KindOf(err) != errdefs.KindNotFound {
		m.log.Debug("delete again after conmon", "container", id, "error", err)
	}
}

// FromBundle is the record of a container whose creation was cut short
// before its record was complete: enough for Delete, with the conmon found
// through the pid file it writes into the bundle at startup.
func FromBundle(id, bundle string) *Container {
	return &Container{ID: id, Bundle: bundle, ConmonPid: readPidFile(filepath.Join(bundle, "conmon.pid"))}
}

// waitPidGone waits until pid has exited (is gone or a zombie: either way
// its files are closed), checking that it is still the conmon of this
// bundle so a reused pid is not waited on. A process in the middle of
// exiting has an empty command line but may still hold its files, so that
// counts as not gone yet.
func waitPidGone(ctx context.Context, pid int, bundle string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if isZombie(pid) {
			return
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || (len(cmdline) > 0 && !bytes.Contains(cmdline, []byte(bundle))) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// conmonAlive reports whether the container's conmon still runs. A
// process in the middle of exiting (empty command line) counts as alive: it
// may still be writing the exit file.
func conmonAlive(c *Container) bool {
	if isZombie(c.ConmonPid) {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c.ConmonPid))
	if err != nil {
		return false
	}
	return len(cmdline) == 0 || bytes.Contains(cmdline, []byte(c.Bundle))
}

// isZombie reports whether pid is gone, a zombie or dead.
func isZombie(pid int) bool { return procstat.Gone(pid) }
