package container

import (
	"context"
	"fmt"
	"io"

	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/monitor"
	"github.com/floe-cri/floe/internal/ocispec"
)

// Streams serves the streaming server's exec and attach sessions for the
// manager's containers.
type Streams struct{ m *Manager }

// Streams returns the manager's exec and attach service.
func (m *Manager) Streams() *Streams { return &Streams{m: m} }

// Exec runs cmd in a running container for an interactive session
// (kubectl exec). A non-zero exit is returned as an exit error carrying
// the code, which the streaming server reports to the client.
func (s *Streams) Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	if len(cmd) == 0 {
		return errdefs.InvalidArgument("cmd", "must not be empty")
	}
	c, mon, err := s.m.running(containerID, "exec")
	if err != nil {
		return err
	}
	spec, err := readBundle(c.Bundle)
	if err != nil {
		return err
	}
	proc, err := ocispec.ExecProcess(spec, cmd, tty)
	if err != nil {
		return err
	}
	streams := monitor.ExecStreams{TTY: tty, Resize: termSizes(ctx, resize)}
	// Typed nils must stay untyped nils for the monitor.
	if in != nil {
		streams.Stdin = in
	}
	if out != nil {
		streams.Stdout = out
	}
	if errOut != nil {
		streams.Stderr = errOut
	}
	log := s.m.log.With("container", c.ID, "pod", c.SandboxID)
	log.Debug("exec session", "cmd", cmd, "tty", tty)
	code, err := mon.Exec(ctx, c.Monitor, proc, streams)
	if err != nil {
		return err
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command %q in container %s exited with %d", cmd, c.ID, code), Code: code}
	}
	return nil
}

// Attach connects the client to a running container's own stdio through
// its conmon (kubectl attach). Resizes reach the container's terminal
// through conmon's control FIFO.
func (s *Streams) Attach(ctx context.Context, containerID string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	c, mon, err := s.m.running(containerID, "attach")
	if err != nil {
		return err
	}
	log := s.m.log.With("container", c.ID, "pod", c.SandboxID)
	if in != nil && !c.Spec.OCI.Stdin {
		return errdefs.FailedPrecondition("container %s was not created with stdin; attach without stdin", c.ID)
	}
	streams := monitor.AttachStreams{CloseStdin: c.Spec.OCI.StdinOnce}
	if in != nil {
		streams.Stdin = in
	}
	if out != nil {
		streams.Stdout = out
	}
	if errOut != nil {
		streams.Stderr = errOut
	}
	if resize != nil && c.Spec.OCI.TTY {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case sz, ok := <-resize:
					if !ok {
						return
					}
					if err := mon.Resize(c.Monitor, sz.Height, sz.Width); err != nil {
						log.Debug("attach resize", "err", err)
					}
				}
			}
		}()
	}
	log.Debug("attach session", "stdin", in != nil, "tty", tty)
	return mon.Attach(ctx, c.Monitor, streams)
}

// termSizes converts the streaming server's resize events; the goroutine
// ends with ctx or when resize is closed.
func termSizes(ctx context.Context, resize <-chan remotecommand.TerminalSize) <-chan monitor.TermSize {
	if resize == nil {
		return nil
	}
	out := make(chan monitor.TermSize)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case sz, ok := <-resize:
				if !ok {
					return
				}
				select {
				case out <- monitor.TermSize{Rows: sz.Height, Cols: sz.Width}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}
