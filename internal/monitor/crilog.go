package monitor

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"
)

// LogLine is one line of a CRI log file as conmon writes it:
// "<RFC3339Nano time> <stdout|stderr> <F|P> <content>". P marks a partial
// line: the content had no newline yet (or was split by conmon's buffer).
type LogLine struct {
	Time    time.Time
	Stream  string
	Partial bool
	Content []byte
}

// ParseLogLine parses one CRI log line, without its trailing newline.
func ParseLogLine(line []byte) (LogLine, error) {
	fields := bytes.SplitN(line, []byte(" "), 4)
	if len(fields) < 3 {
		return LogLine{}, fmt.Errorf("malformed CRI log line %q", line)
	}
	ts, err := time.Parse(time.RFC3339Nano, string(fields[0]))
	if err != nil {
		return LogLine{}, fmt.Errorf("CRI log line time %q: %w", fields[0], err)
	}
	l := LogLine{Time: ts, Stream: string(fields[1])}
	if l.Stream != "stdout" && l.Stream != "stderr" {
		return LogLine{}, fmt.Errorf("CRI log line stream %q", fields[1])
	}
	switch string(fields[2]) {
	case "F":
	case "P":
		l.Partial = true
	default:
		return LogLine{}, fmt.Errorf("CRI log line tag %q", fields[2])
	}
	if len(fields) == 4 {
		l.Content = fields[3]
	}
	return l, nil
}

// ReadLog reassembles stdout and stderr from a CRI log: full lines get
// their newline back, partial lines are joined to what follows.
func ReadLog(r io.Reader) (stdout, stderr []byte, err error) {
	stdout, stderr, _, err = readLogCapped(r, math.MaxInt)
	return stdout, stderr, err
}

// readLogCapped is ReadLog keeping at most max bytes of stdout and stderr
// together; truncated reports that there was more.
func readLogCapped(r io.Reader, max int) (stdout, stderr []byte, truncated bool, err error) {
	var out, errb bytes.Buffer
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		l, err := ParseLogLine(sc.Bytes())
		if err != nil {
			return nil, nil, false, err
		}
		b := &out
		if l.Stream == "stderr" {
			b = &errb
		}
		n := len(l.Content)
		if !l.Partial {
			n++ // the newline
		}
		if room := max - out.Len() - errb.Len(); n > room {
			// n > room leaves no room for the newline: room <= len(Content).
			b.Write(l.Content[:room])
			return out.Bytes(), errb.Bytes(), true, nil
		}
		b.Write(l.Content)
		if !l.Partial {
			b.WriteByte('\n')
		}
	}
	return out.Bytes(), errb.Bytes(), false, sc.Err()
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
