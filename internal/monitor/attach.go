package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Attach stream prefixes conmon puts in front of every message it sends on
// the attach socket.
const (
	attachPipeStdout = 2
	attachPipeStderr = 3
	// attachBufSize is conmon's own buffer (8192) plus the prefix byte: a
	// SOCK_SEQPACKET read with a smaller buffer would truncate a message.
	attachBufSize = 8192 + 1
)

// AttachStreams are the client's ends of an attach; nil ones are not
// connected. Stdout and Stderr are written from one goroutine.
type AttachStreams struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// CloseStdin half-closes the socket when Stdin ends, which makes
	// conmon close the container's stdin (it was started without
	// --leave-stdin-open: CRI StdinOnce), and keeps reading the output.
	// Otherwise the end of Stdin ends the attach.
	CloseStdin bool
}

// Attach connects to the container's conmon attach socket and copies
// until the container's output ends (it exited) or ctx is done. The
// container's own stdio is what is attached; its stdin reaches the
// container only when it was created with Stdin.
func (m *Monitor) Attach(ctx context.Context, c *Container, s AttachStreams) error {
	conn, err := m.dialAttach(c.ID)
	if err != nil {
		return fmt.Errorf("container %s: attach: %w", c.ID, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if s.Stdin != nil {
		// The end of the client's stdin is the end of the session (the
		// client detached or went away; a hijacked streaming connection
		// does not cancel ctx), except for stdin-once containers: their
		// stdin is closed and the output followed until they exit, as
		// CRI-O does.
		go func() {
			_, err := io.Copy(conn, s.Stdin)
			if err == nil && s.CloseStdin {
				conn.CloseWrite()
				return
			}
			conn.Close()
		}()
	}
	buf := make([]byte, attachBufSize)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			var w io.Writer
			switch buf[0] {
			case attachPipeStdout:
				w = s.Stdout
			case attachPipeStderr:
				w = s.Stderr
			}
			if w != nil && n > 1 {
				if _, werr := w.Write(buf[1:n]); werr != nil {
					return fmt.Errorf("container %s: attach: write to client: %w", c.ID, werr)
				}
			}
		}
		if err != nil || n == 0 {
			if ctx.Err() != nil || err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("container %s: attach: read: %w", c.ID, err)
		}
	}
}

// dialAttach connects to <SocketDir>/<id>/attach through /proc/self/fd of
// the opened directory: the full path easily exceeds the 108 bytes a unix
// socket address holds.
func (m *Monitor) dialAttach(id string) (*net.UnixConn, error) {
	dir := filepath.Join(m.cfg.SocketDir, id)
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open attach socket directory (is the container running?): %w", err)
	}
	defer unix.Close(dfd)
	addr := &net.UnixAddr{Name: "/proc/self/fd/" + strconv.Itoa(dfd) + "/attach", Net: "unixpacket"}
	conn, err := net.DialUnix("unixpacket", nil, addr)
	if err != nil {
		return nil, fmt.Errorf("connect to conmon's attach socket in %s: %w", dir, err)
	}
	return conn, nil
}

// Resize sets the container terminal's size through conmon's control FIFO.
func (m *Monitor) Resize(c *Container, rows, cols uint16) error {
	// O_NONBLOCK: opening a FIFO nobody reads fails at once (ENXIO)
	// instead of hanging when conmon is gone.
	fd, err := unix.Open(filepath.Join(c.Bundle, "ctl"), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("container %s: resize: open control fifo: %w", c.ID, err)
	}
	ctl := os.NewFile(uintptr(fd), "ctl")
	defer ctl.Close()
	if _, err := fmt.Fprintf(ctl, "1 %d %d\n", rows, cols); err != nil {
		return fmt.Errorf("container %s: resize: %w", c.ID, err)
	}
	return nil
}
