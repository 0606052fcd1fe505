package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/floe-cri/floe/internal/podinit"
)

// CreateOptions describe a container to create from a bundle.
type CreateOptions struct {
	ID      string
	Bundle  string // directory holding config.json
	LogPath string // CRI log file conmon writes
	// Terminal and Stdin are the CRI tty and stdin flags.
	Terminal bool
	Stdin    bool
	// LeaveStdinOpen keeps the container's stdin open when an attached
	// client disconnects (CRI stdin without stdin_once).
	LeaveStdinOpen bool
	// RestoreFrom is a directory of criu images (a checkpoint): conmon
	// then runs `runc restore --detach` instead of `runc create`, so the
	// container comes back running, its processes where they were.
	RestoreFrom string
	// Timeout bounds the whole creation (default 4 minutes, the kubelet's
	// own CreateContainer deadline is 4 minutes too).
	Timeout time.Duration
}

// syncMessage is what conmon writes on its sync pipe: the container (or
// exec) pid first, for exec --sync the exit code next; -1 with a message on
// failure.
type syncMessage struct {
	Data    int    `json:"data"`
	Message string `json:"message,omitempty"`
}

// conmonArgs are the flags every conmon invocation shares.
func (m *Monitor) conmonArgs(id, uuid string) []string {
	runtime := m.cfg.RuntimePath
	var shim []string
	if m.cfg.Sandboxed {
		// conmon runs the runtime through the shim, which gives it a
		// process to follow per container (see sandboxed.go).
		runtime = m.cfg.ShimPath
		shim = []string{podinit.RuntimeShimArg, m.cfg.RuntimePath}
	}
	args := []string{"--api-version", "1", "-c", id, "-u", uuid, "-r", runtime,
		"--socket-dir-path", m.cfg.SocketDir}
	for _, a := range shim {
		args = append(args, "--runtime-arg", a)
	}
	for _, a := range m.runtimeGlobalArgs() {
		args = append(args, "--runtime-arg", a)
	}
	return args
}

// startConmon starts conmon with a sync pipe on fd 3 and returns the pipe's
// read end. conmon's own diagnostics go to stderrPath.
func (m *Monitor) startConmon(ctx context.Context, args []string, dir, stderrPath string) (*exec.Cmd, *os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("sync pipe: %w", err)
	}
	defer w.Close()
	stderr, err := os.OpenFile(stderrPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		r.Close()
		return nil, nil, fmt.Errorf("conmon stderr file: %w", err)
	}
	defer stderr.Close()
	cmd := exec.CommandContext(ctx, m.cfg.ConmonPath, args...)
	cmd.ExtraFiles = []*os.File{w}
	// conmon writes files such as "oom" into its working directory.
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "_OCI_SYNCPIPE=3")
	cmd.Stderr = stderr
	// Its own session: signals aimed at the daemon's process group or
	// terminal never reach the monitors, which must outlive the daemon.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		r.Close()
		return nil, nil, fmt.Errorf("start conmon: %w", err)
	}
	return cmd, r, nil
}

// readSync reads one message from the sync pipe before the deadline.
func readSync(dec *json.Decoder, r *os.File, deadline time.Time) (syncMessage, error) {
	var msg syncMessage
	if err := r.SetReadDeadline(deadline); err != nil {
		return msg, err
	}
	if err := dec.Decode(&msg); err != nil {
		if errors.Is(err, io.EOF) {
			return msg, errors.New("conmon closed its sync pipe without an answer")
		}
		return msg, err
	}
	return msg, nil
}

// Create starts conmon for the container, which runs `runc create`, and
// returns once the container exists (state "created") with its pid. On
// failure nothing is left behind.
func (m *Monitor) Create(ctx context.Context, opts CreateOptions) (*Container, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 4 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	log := m.log.With("container", opts.ID)
	if err := os.MkdirAll(filepath.Dir(opts.LogPath), 0o755); err != nil {
		return nil, fmt.Errorf("container %s: log directory: %w", opts.ID, err)
	}
	// A leftover exit file from an earlier container of the same id would
	// be taken for this one's exit.
	if err := os.Remove(m.exitFile(opts.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("container %s: remove stale exit file: %w", opts.ID, err)
	}
	args := m.conmonArgs(opts.ID, opts.ID)
	args = append(args, "-n", opts.ID, "-b", opts.Bundle,
		"-p", filepath.Join(opts.Bundle, "pidfile"),
		"-P", filepath.Join(opts.Bundle, "conmon.pid"),
		"-l", "k8s-file:"+opts.LogPath,
		"--exit-dir", m.cfg.ExitDir)
	if m.cfg.LogSizeMax > 0 {
		args = append(args, "--log-size-max", strconv.FormatInt(m.cfg.LogSizeMax, 10))
	}
	if opts.Terminal {
		args = append(args, "-t")
	}
	if opts.RestoreFrom != "" {
		// conmon passes --bundle, --pid-file, --detach, --image-path and
		// --work-path (the bundle: criu's restore.log lands there).
		args = append(args, "--restore", opts.RestoreFrom)
	}
	if opts.Stdin {
		args = append(args, "-i")
		if opts.LeaveStdinOpen {
			args = append(args, "--leave-stdin-open")
		}
	}
	cmd, r, err := m.startConmon(ctx, args, opts.Bundle, filepath.Join(opts.Bundle, "conmon.stderr"))
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", opts.ID, err)
	}
	defer r.Close()
	fail := func(err error) (*Container, error) {
		// Undo on a context of its own: ctx may be what ran out.
		cctx, ccancel := context.WithTimeout(context.Background(), m.cfg.CommandTimeout)
		defer ccancel()
		if _, derr := m.runtime(cctx, "delete", "--force", opts.ID); derr != nil {
			log.Debug("cleanup after failed create", "error", derr)
		}
		if pid := readPidFile(filepath.Join(opts.Bundle, "conmon.pid")); pid > 0 {
			waitPidGone(cctx, pid, opts.Bundle, killGrace)
		}
		os.Remove(m.exitFile(opts.ID))
		os.RemoveAll(filepath.Join(m.cfg.SocketDir, opts.ID))
		return nil, fmt.Errorf("container %s: create: %w", opts.ID, err)
	}
	// The launching conmon exits as soon as it has forked the monitor; reap
	// it here so it never lingers as a zombie of the daemon.
	if err := cmd.Wait(); err != nil {
		return fail(fmt.Errorf("conmon: %w%s", err, stderrTail(filepath.Join(opts.Bundle, "conmon.stderr"))))
	}
	deadline, _ := ctx.Deadline()
	msg, err := readSync(json.NewDecoder(r), r, deadline)
	if err != nil {
		return fail(fmt.Errorf("waiting for conmon: %w%s", err, stderrTail(filepath.Join(opts.Bundle, "conmon.stderr"))))
	}
	if msg.Data <= 0 {
		if opts.RestoreFrom != "" {
			return fail(fmt.Errorf("runc restore: %s%s", strings.TrimSpace(msg.Message), criuLogTail(filepath.Join(opts.Bundle, "restore.log"))))
		}
		return fail(fmt.Errorf("runc create: %s", strings.TrimSpace(msg.Message)))
	}
	c := &Container{
		ID: opts.ID, Bundle: opts.Bundle, LogPath: opts.LogPath, Pid: msg.Data,
		ConmonPid: readPidFile(filepath.Join(opts.Bundle, "conmon.pid")),
		CreatedAt: time.Now(),
	}
	if !m.cfg.Sandboxed {
		// A sandboxed container's pid is its waiter's (a host process
		// outside the container's cgroup).
		c.MemoryCgroup = memoryCgroupOf(msg.Data)
	}
	log.Debug("container created", "pid", c.Pid, "conmon", c.ConmonPid)
	return c, nil
}

func readPidFile(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

func stderrTail(path string) string {
	data, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(data))
	if len(s) > 512 {
		s = s[len(s)-512:]
	}
	if s == "" {
		return ""
	}
	return " (conmon: " + s + ")"
}
