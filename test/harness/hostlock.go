package harness

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// HostLockPath is the lock every test package that runs real containers,
// monitors or pod processes holds for its whole run. `go test ./...` runs
// packages in parallel, and the leak checks here look at host-wide state
// (every conmon, runc and floe helper process): without the lock, one
// package's live containers are reported as another package's leaks.
const HostLockPath = "/run/floe-host-tests.lock"

// LockHost blocks until this test process holds the host lock and returns
// the function that releases it. Call it first in TestMain.
func LockHost() (unlock func(), err error) {
	f, err := os.OpenFile(HostLockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", HostLockPath, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", HostLockPath, err)
	}
	// Closing the file drops the lock; so does the process ending.
	return func() { f.Close() }, nil
}

// MustLockHost is LockHost for TestMain: it exits on failure.
func MustLockHost() func() {
	unlock, err := LockHost()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return unlock
}
