// Package statelock guarantees that one floe daemon owns a state
// directory: it holds an exclusive flock on <state_dir>/floe.lock for the
// daemon's lifetime. The kernel drops the lock when the process dies, even
// by kill -9, so a restart never waits on a stale lock.
package statelock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Lock is a held state-directory lock.
type Lock struct{ f *os.File }

// Acquire takes the lock or fails at once naming the holder's pid.
func Acquire(stateDir string) (*Lock, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir %s: %w", stateDir, err)
	}
	path := filepath.Join(stateDir, "floe.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := lockOrWaitForDeadHolder(f); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("state dir %s is in use by another floe daemon (pid %s); give each daemon its own --state-dir", stateDir, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Release drops the lock.
func (l *Lock) Release() error { return l.f.Close() }

// deadHolderWait bounds how long Acquire waits for a lock whose recorded
// holder has died.
var deadHolderWait = 5 * time.Second

// lockOrWaitForDeadHolder takes the lock. When it is busy but the daemon
// that took it (the pid in the file) is gone, it waits a little: a daemon
// restarted right after a crash has been seen (by the crash test) to find
// its killed predecessor's lock still held for a moment after that
// process was reaped. A live holder is a second daemon: that fails at once.
func lockOrWaitForDeadHolder(f *os.File) error {
	deadline := time.Now().Add(deadHolderWait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) || holderAlive(f) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// holderAlive reports whether the pid recorded in the lock file runs. An
// unreadable or empty record counts as alive, so Acquire fails as before.
func holderAlive(f *os.File) bool {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil || pid <= 0 {
		return true
	}
	if pid == os.Getpid() {
		return true
	}
	err = unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
