package monitor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/podinit"
)

// A sandboxed runtime (gVisor's runsc, Config.Sandboxed) runs all of a
// pod's containers in one sandbox process and reports that process's pid
// for every container. conmon runs such a runtime through floe's runtime
// shim (internal/podinit/runtimeshim.go): its create leaves a waiter
// process, conmon's descendant, that holds the container's stdio and
// exits with the container's own status (`runsc wait`). Container.Pid is
// that waiter's pid, so conmon's exit file, the log and attach work as
// for runc, and survive a restart of floe.

// startSandboxed runs `<runtime> start` for a container of a sandboxed
// runtime. runsc 20221219 gives a container joining a sandbox the stdio
// of the start command, so it gets the waiter's, which are the pipes (or
// /dev/null) conmon set up; a terminal was set up at create and they are
// ignored. Errors name the runtime's own message: with the container's
// stderr as its stderr, runsc's message lands in the container's log,
// which the error quotes.
func (m *Monitor) startSandboxed(ctx context.Context, c *Container) error {
	stdio := make([]*os.File, 3)
	for fd, flag := range []int{os.O_RDONLY, os.O_WRONLY, os.O_WRONLY} {
		// Opening a pipe through /proc gives the same pipe.
		f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/%d", c.Pid, fd), flag, 0)
		if err != nil {
			for _, g := range stdio[:fd] {
				g.Close()
			}
			if errors.Is(err, os.ErrNotExist) {
				return errdefs.FailedPrecondition("container %s: its runtime waiter (pid %d) is gone: %v", c.ID, c.Pid, err)
			}
			return fmt.Errorf("container %s: stdio of the runtime waiter: %w", c.ID, err)
		}
		stdio[fd] = f
	}
	defer func() {
		for _, f := range stdio {
			f.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, m.cfg.CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.cfg.RuntimePath, append(m.runtimeGlobalArgs(), "start", c.ID)...)
	// Files, not pipes: `runsc start` launches the container's gofer,
	// which inherits them and lives as long as the container.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio[0], stdio[1], stdio[2]
	// Its own session: the gofer must not get signals aimed at floe's
	// process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s start: %w: %s", filepath.Base(m.cfg.RuntimePath), err, logTail(c.LogPath))
	}
	return nil
}

// checkShim is checked by New: a sandboxed runtime needs its shim.
func checkShim(cfg Config) error {
	if !cfg.Sandboxed {
		return nil
	}
	if cfg.ShimPath == "" || !strings.HasPrefix(cfg.ShimPath, "/") {
		return fmt.Errorf("monitor: sandboxed runtime %s needs the runtime shim (floe-pod-init or floe), got %q", cfg.RuntimePath, cfg.ShimPath)
	}
	return nil
}

// logTail is the end of a container's CRI log (where runsc's own message
// goes when its start fails), without the CRI prefixes, bounded.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	buf := make([]byte, 2048)
	st, err := f.Stat()
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	off := max(st.Size()-int64(len(buf)), 0)
	n, _ := f.ReadAt(buf, off)
	lines := strings.Split(strings.TrimSpace(string(buf[:n])), "\n")
	if len(lines) > 2 {
		lines = lines[len(lines)-2:]
	}
	for i, l := range lines {
		// "TIME STREAM TAG text"
		if parts := strings.SplitN(l, " ", 4); len(parts) == 4 {
			lines[i] = parts[3]
		}
	}
	if s := strings.Join(lines, "; "); s != "" {
		return s
	}
	return "(no message in the container's log)"
}

// killSandboxedExec kills a timed-out exec's process inside the sandbox,
// by the pid the runtime shim had runsc write beside the exec's pid file.
func (m *Monitor) killSandboxedExec(ctx context.Context, c *Container, pidFile string) {
	pid := readPidFile(pidFile + podinit.InternalPidFileSuffix)
	if pid <= 0 {
		m.log.Warn("timed-out exec: no pid inside the sandbox to kill", "container", c.ID)
		return
	}
	if _, err := m.runtime(ctx, "kill", "--pid="+strconv.Itoa(pid), c.ID, "KILL"); err != nil {
		m.log.Warn("timed-out exec: kill its process in the sandbox", "container", c.ID, "pid", pid, "err", err)
	}
}
