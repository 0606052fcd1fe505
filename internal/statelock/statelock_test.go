package statelock

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSecondAcquireFailsUntilReleased(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(dir); err == nil || !strings.Contains(err.Error(), "in use by another floe daemon") {
		t.Fatalf("second lock: %v", err)
	}
	l.Release()
	l2, err := Acquire(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Release()
}

// deadPid returns the pid of a process that has exited and been reaped.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	return cmd.Process.Pid
}

// holdAs takes the lock on another open file description, as a lingering
// process would, and records pid as the holder.
func holdAs(t *testing.T, dir string, pid int) *os.File {
	t.Helper()
	path := filepath.Join(dir, "floe.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(pid)+"\n"), 0)
	return f
}

func TestAcquireWaitsForTheLockOfADeadDaemon(t *testing.T) {
	dir := t.TempDir()
	held := holdAs(t, dir, deadPid(t))
	go func() {
		time.Sleep(300 * time.Millisecond)
		held.Close()
	}()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatalf("lock of a dead daemon, released 300ms later: %v", err)
	}
	l.Release()
}

func TestAcquireFailsAtOnceForALiveHolder(t *testing.T) {
	dir := t.TempDir()
	held := holdAs(t, dir, os.Getppid())
	defer held.Close()
	start := time.Now()
	if _, err := Acquire(dir); err == nil || !strings.Contains(err.Error(), "in use by another floe daemon") {
		t.Fatalf("lock of a live daemon: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a live holder made Acquire wait %v", d)
	}
}

func TestAcquireGivesUpOnAStuckDeadHolder(t *testing.T) {
	old := deadHolderWait
	deadHolderWait = 200 * time.Millisecond
	defer func() { deadHolderWait = old }()
	dir := t.TempDir()
	held := holdAs(t, dir, deadPid(t))
	defer held.Close()
	if _, err := Acquire(dir); err == nil || !strings.Contains(err.Error(), "in use by another floe daemon") {
		t.Fatalf("lock still held after the wait: %v", err)
	}
}
