package monitor

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/floe-cri/floe/internal/procstat"
)

// process is a handle on a process floe did not fork (an exec'd process
// whose parent is conmon), held by pidfd so that signals reach exactly that
// process even if its pid is reused. A zero process (pidfd not available)
// does nothing.
type process struct {
	pid   int
	pidfd int
}

func openProcess(pid int) (process, error) {
	if pid <= 0 {
		return process{pidfd: -1}, fmt.Errorf("no pid")
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return process{pidfd: -1}, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	return process{pid: pid, pidfd: fd}, nil
}

func (p process) close() {
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
	}
}

// killAndWait sends SIGKILL and waits, up to limit, until the process has
// exited and been reaped by its parent: a zombie still shows in the
// container's /proc (and in `pgrep`), so exited alone is not gone.
func (p process) killAndWait(limit time.Duration) error {
	if p.pidfd < 0 {
		return errors.New("process not held")
	}
	if err := unix.PidfdSendSignal(p.pidfd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill %d: %w", p.pid, err)
	}
	deadline := time.Now().Add(limit)
	// The pidfd polls readable once the process has exited.
	fds := []unix.PollFd{{Fd: int32(p.pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(time.Until(deadline)/time.Millisecond))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for %d: %w", p.pid, err)
		}
		if n == 0 {
			return fmt.Errorf("process %d still running %v after SIGKILL", p.pid, limit)
		}
		break
	}
	for !p.reaped() {
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d exited but was not reaped within %v", p.pid, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// reaped reports whether the exited process has left the process table.
// The pid cannot be taken by a new process before it is reaped; a live
// process under the same pid afterwards means ours is gone.
func (p process) reaped() bool {
	st, err := procstat.Read(p.pid)
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	return err == nil && !st.Dead()
}

// signalWouldBeDropped reports whether sig sent now to pid would be lost:
// pid is PID 1 of its PID namespace (the kernel drops signals such a
// process neither catches nor ignores) and has no handler for sig yet.
func signalWouldBeDropped(pid int, sig syscall.Signal) bool {
	st, err := procStatus(pid)
	if err != nil {
		return false
	}
	nspid := strings.Fields(st["NSpid"])
	if len(nspid) < 2 || nspid[len(nspid)-1] != "1" {
		return false
	}
	caught, ok := maskHas(st["SigCgt"], sig)
	ignored, ok2 := maskHas(st["SigIgn"], sig)
	return ok && ok2 && !caught && !ignored
}

// signalCaught reports whether pid has a handler for sig; ok is false when
// the process is gone.
func signalCaught(pid int, sig syscall.Signal) (caught, ok bool) {
	st, err := procStatus(pid)
	if err != nil {
		return false, false
	}
	return maskHas(st["SigCgt"], sig)
}

func procStatus(pid int) (map[string]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out, nil
}

// maskHas reads a /proc status signal mask (hex, bit n-1 for signal n).
func maskHas(hex string, sig syscall.Signal) (bool, bool) {
	mask, err := strconv.ParseUint(hex, 16, 64)
	if err != nil || sig < 1 || sig > 64 {
		return false, false
	}
	return mask&(1<<(uint(sig)-1)) != 0, true
}
