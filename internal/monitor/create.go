package monitor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

	"github.com/fsnotify/fsnotify"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CreateOptions describe a container to create from a bundle.
type CreateOptions struct {
	ID      string
	Bundle  string // directory holding config.json
	LogPath string // CRI log file conmon writes
	// Terminal and Stdin are the CRI tty and stdin flags.
	Terminal bool
	Stdin    bool
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
	args := []string{"--api-version", "1", "-c", id, "-u", uuid, "-r", m.cfg.RuntimePath,
		"--socket-dir-path", m.cfg.SocketDir}
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
	if opts.Stdin {
		args = append(args, "-i")
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
		return fail(fmt.Errorf("runc create: %s", strings.TrimSpace(msg.Message)))
	}
	c := &Container{
		ID: opts.ID, Bundle: opts.Bundle, LogPath: opts.LogPath, Pid: msg.Data,
		ConmonPid: readPidFile(filepath.Join(opts.Bundle, "conmon.pid")),
		CreatedAt: time.Now(), MemoryCgroup: memoryCgroupOf(msg.Data),
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

// ReopenLog asks conmon to reopen the container's log file, after the
// kubelet has rotated it away, and waits until the new file exists.
func (m *Monitor) ReopenLog(ctx context.Context, c *Container) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
	defer cancel()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("container %s: reopen log: %w", c.ID, err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(c.LogPath)); err != nil {
		return fmt.Errorf("container %s: reopen log: watch: %w", c.ID, err)
	}
	// O_NONBLOCK: opening a FIFO nobody reads fails at once (ENXIO) instead
	// of hanging when conmon is gone.
	fd, err := unix.Open(filepath.Join(c.Bundle, "ctl"), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("container %s: reopen log: open control fifo (is the container running?): %w", c.ID, err)
	}
	ctl := os.NewFile(uintptr(fd), "ctl")
	_, err = ctl.WriteString("2 0 0\n")
	ctl.Close()
	if err != nil {
		return fmt.Errorf("container %s: reopen log: %w", c.ID, err)
	}
	for {
		if _, err := os.Stat(c.LogPath); err == nil {
			return nil
		}
		select {
		case <-w.Events:
		case err := <-w.Errors:
			return fmt.Errorf("container %s: reopen log: watch: %w", c.ID, err)
		case <-ctx.Done():
			return fmt.Errorf("container %s: reopen log: conmon did not recreate %s: %w", c.ID, c.LogPath, ctx.Err())
		}
	}
}

// ErrExecTimeout is returned (wrapped) when an ExecSync command outlives
// its timeout; conmon has killed it by then.
var ErrExecTimeout = errors.New("exec timed out")

// ExecResult is the outcome of ExecSync.
type ExecResult struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// execOutputMax bounds what an ExecSync may return, as CRI-O does: probes
// are meant to be short.
const execOutputMax = 16 << 20

// ExecSync runs process in the running container through a conmon in exec
// mode (conmon -e --exec-process-spec --sync -T), waits for it and returns
// its output and exit code. A timeout of 0 means none; on timeout conmon
// kills the process and the error wraps ErrExecTimeout.
func (m *Monitor) ExecSync(ctx context.Context, c *Container, process *specs.Process, timeout time.Duration) (*ExecResult, error) {
	dir, err := os.MkdirTemp("", "floe-exec-")
	if err != nil {
		return nil, fmt.Errorf("container %s: exec: %w", c.ID, err)
	}
	defer os.RemoveAll(dir)
	spec, err := json.Marshal(process)
	if err != nil {
		return nil, fmt.Errorf("container %s: exec: %w", c.ID, err)
	}
	specPath := filepath.Join(dir, "process.json")
	if err := os.WriteFile(specPath, spec, 0o600); err != nil {
		return nil, fmt.Errorf("container %s: exec: %w", c.ID, err)
	}
	var idb [8]byte
	rand.Read(idb[:])
	execID := hex.EncodeToString(idb[:])
	logPath := filepath.Join(dir, "exec.log")
	// No -b and no --exit-dir: they belong to the container's own conmon
	// (an exec conmon would take over its attach socket and ctl FIFO, and
	// write a false exit file for the container).
	args := m.conmonArgs(c.ID, execID)
	args = append(args, "-p", filepath.Join(dir, "pid"), "-l", "k8s-file:"+logPath,
		"--log-size-max", strconv.Itoa(execOutputMax),
		"-e", "--exec-process-spec", specPath, "--sync")
	// Our own bound: conmon's -T plus room for runc exec to start and
	// conmon to report.
	limit := m.cfg.CommandTimeout
	if timeout > 0 {
		secs := int((timeout + time.Second - 1) / time.Second)
		args = append(args, "-T", strconv.Itoa(secs))
		limit += time.Duration(secs) * time.Second
	} else {
		limit = 24 * time.Hour
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd, r, err := m.startConmon(ctx, args, dir, filepath.Join(dir, "conmon.stderr"))
	if err != nil {
		return nil, fmt.Errorf("container %s: exec: %w", c.ID, err)
	}
	defer r.Close()
	defer cmd.Wait()
	deadline, _ := ctx.Deadline()
	dec := json.NewDecoder(r)
	first, err := readSync(dec, r, deadline)
	if err == nil && first.Data <= 0 {
		err = fmt.Errorf("runc exec: %s", strings.TrimSpace(first.Message))
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: exec: %w%s", c.ID, err, stderrTail(filepath.Join(dir, "conmon.stderr")))
	}
	result, err := readSync(dec, r, deadline)
	if err != nil {
		return nil, fmt.Errorf("container %s: exec: waiting for the exit code: %w", c.ID, err)
	}
	// conmon has closed the log by the time it reports the exit code.
	out := &ExecResult{ExitCode: result.Data}
	if f, err := os.Open(logPath); err == nil {
		out.Stdout, out.Stderr, err = ReadLog(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("container %s: exec: read output: %w", c.ID, err)
		}
	}
	if result.Data < 0 {
		if strings.Contains(result.Message, "timed out") {
			return out, fmt.Errorf("container %s: exec %q after %v: %w", c.ID, process.Args, timeout, ErrExecTimeout)
		}
		return out, fmt.Errorf("container %s: exec: %s", c.ID, result.Message)
	}
	return out, nil
}
