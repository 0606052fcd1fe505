// Package procstat reads the fields floe needs from /proc/PID/stat: a
// process's state letter and its start time. It is the one parser of that
// file, so every caller agrees on what counts as a dead process (state Z,
// a zombie, or X, dead and being reaped).
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// Stat is the part of /proc/PID/stat floe uses.
type Stat struct {
	// State is the state letter (R, S, D, Z, X, ...).
	State byte
	// PPid is the parent's pid (field 4).
	PPid int
	// StartTime is the process's start, in clock ticks after boot (field
	// 22): with the pid it tells a process from a later one reusing the pid.
	StartTime uint64
}

// Dead reports whether the process has exited: a zombie waiting for its
// parent, or dead and leaving the process table.
func (s Stat) Dead() bool { return s.State == 'Z' || s.State == 'X' }

// Read parses /proc/PID/stat. The error wraps fs.ErrNotExist when the
// process is gone.
func Read(pid int) (Stat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, err
	}
	st, err := Parse(data)
	if err != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// Parse reads the contents of a stat file. The command name (field 2) may
// hold spaces and parentheses, so fields are counted from its last ')'.
func Parse(data []byte) (Stat, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return Stat{}, errors.New("no ')' after the command name")
	}
	fields := bytes.Fields(data[i+1:])
	// fields[0] is field 3 (state); field 22 (starttime) is fields[19].
	if len(fields) < 20 {
		return Stat{}, fmt.Errorf("%d fields after the command name, want at least 20", len(fields))
	}
	// The state is one letter (R, S, D, Z, X, ...); anything else means the
	// fields are not where this parser expects them.
	if st := fields[0]; len(st) != 1 || !(st[0] >= 'A' && st[0] <= 'Z' || st[0] >= 'a' && st[0] <= 'z') {
		return Stat{}, fmt.Errorf("state %q is not a letter", st)
	}
	ppid, err := strconv.Atoi(string(fields[1]))
	if err != nil {
		return Stat{}, fmt.Errorf("parent pid: %w", err)
	}
	start, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return Stat{}, fmt.Errorf("start time: %w", err)
	}
	return Stat{State: fields[0][0], PPid: ppid, StartTime: start}, nil
}

// Gone reports whether pid no longer runs: absent from /proc, a zombie, or
// dead. A stat file that cannot be parsed counts as running: the caller
// must not act on a process it cannot read as if it were gone.
func Gone(pid int) bool {
	st, err := Read(pid)
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	return err == nil && st.Dead()
}
