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
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TermSize is a terminal size in character cells.
type TermSize struct {
	Rows, Cols uint16
}

// ExecStreams are the client's ends of an interactive exec; nil ones are
// not connected.
type ExecStreams struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// TTY runs the process on a terminal (process.Terminal must be set
	// too); Stderr is then unused, the terminal merges both outputs.
	TTY    bool
	Resize <-chan TermSize
}

// streamDrain bounds how long output is still copied after the process
// exited, for children that keep the output open in the background.
const streamDrain = 2 * time.Second

// Exec runs process in the running container with `runc exec` in the
// foreground, copying the client's streams, and returns the process's
// exit code. With a TTY, runc's stdio is the slave side of a pty the
// daemon holds: runc creates the container's console, relays between the
// two and forwards SIGWINCH, so resizing the daemon's pty resizes the
// container's (the way CRI-O runs interactive execs). When ctx ends (the
// client went away) the process is killed.
func (m *Monitor) Exec(ctx context.Context, c *Container, process *specs.Process, s ExecStreams) (int, error) {
	dir, err := execDir(c)
	if err != nil {
		return -1, fmt.Errorf("container %s: exec: %w", c.ID, err)
	}
	defer os.RemoveAll(dir)
	spec, err := json.Marshal(process)
	if err != nil {
		return -1, fmt.Errorf("container %s: exec: %w", c.ID, err)
	}
	specPath, pidPath := filepath.Join(dir, "process.json"), filepath.Join(dir, "pid")
	if err := os.WriteFile(specPath, spec, 0o600); err != nil {
		return -1, fmt.Errorf("container %s: exec: %w", c.ID, err)
	}
	args := append(m.runtimeGlobalArgs(), "exec", "--process", specPath, "--pid-file", pidPath, c.ID)
	// A client that stops taking output has gone away (a hijacked
	// streaming connection does not cancel ctx): end the process rather
	// than let it block on a full pipe forever.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.Stdout, s.Stderr = cancelOnError(s.Stdout, cancel), cancelOnError(s.Stderr, cancel)
	cmd := exec.CommandContext(ctx, m.cfg.RuntimePath, args...)
	// Killing runc alone would leave the exec'd process running in the
	// container: kill the process first.
	cmd.Cancel = func() error {
		if pid := readPidFile(pidPath); pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		return cmd.Process.Kill()
	}
	cmd.WaitDelay = streamDrain
	log := m.log.With("container", c.ID, "argv", process.Args, "tty", s.TTY)
	if s.TTY {
		err = m.execTTY(cmd, s)
	} else {
		err = m.execPipes(cmd, s)
	}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		log.Debug("exec ended with the client", "err", ctx.Err())
		return -1, fmt.Errorf("container %s: exec: %w", c.ID, ctx.Err())
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
		return 0, nil
	case errors.As(err, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return exitErr.ExitCode(), nil
	default:
		return -1, fmt.Errorf("container %s: exec: %w", c.ID, err)
	}
}

func (m *Monitor) execPipes(cmd *exec.Cmd, s ExecStreams) error {
	cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
	if s.Stdin != nil {
		w, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		// Ends when the client's stdin ends or the pipe breaks once the
		// process is gone (Wait closes it).
		go func() {
			io.Copy(w, s.Stdin)
			w.Close()
		}()
		return cmd.Wait()
	}
	return cmd.Run()
}

func (m *Monitor) execTTY(cmd *exec.Cmd, s ExecStreams) error {
	master, slave, err := openPty()
	if err != nil {
		return err
	}
	defer master.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = cmd.Start()
	slave.Close()
	if err != nil {
		return err
	}
	stopResize := make(chan struct{})
	defer close(stopResize)
	if s.Resize != nil {
		go func() {
			for {
				select {
				case <-stopResize:
					return
				case sz, ok := <-s.Resize:
					if !ok {
						return
					}
					if err := setWinsize(master, sz.Rows, sz.Cols); err != nil {
						m.log.Debug("exec resize", "err", err)
					}
				}
			}
		}()
	}
	if s.Stdin != nil {
		// Ends when the client's stdin ends or master is closed.
		go io.Copy(master, s.Stdin)
	}
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		w := s.Stdout
		if w == nil {
			w = io.Discard
		}
		// Reading the master fails with EIO once runc, the slave's last
		// holder, has exited: that is the end of the output.
		io.Copy(w, master)
	}()
	err = cmd.Wait()
	select {
	case <-outDone:
	case <-time.After(streamDrain):
	}
	return err
}

// cancelOnError wraps w so a failed write cancels the session.
func cancelOnError(w io.Writer, cancel context.CancelFunc) io.Writer {
	if w == nil {
		return nil
	}
	return writerFunc(func(p []byte) (int, error) {
		n, err := w.Write(p)
		if err != nil {
			cancel()
		}
		return n, err
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
