// Package failpoint lets crash tests kill the daemon at named steps of its
// create and remove paths, to prove that a restart undoes whatever a crash
// at that step left behind.
//
// A test starts floe with FLOE_TEST_CRASH_AT=<step name>; the first time
// that step is reached, Hit sends SIGKILL to the daemon itself, so nothing
// runs after it (no deferred cleanup, no undo), exactly as when the kernel
// or an operator kills floe. In production the variable is unset and Hit is
// one atomic load.
package failpoint

import (
	"os"
	"sync/atomic"
	"syscall"
)

// EnvVar names the step to crash at.
const EnvVar = "FLOE_TEST_CRASH_AT"

// armed is the step name, or nil when no failpoint is set. It is read once
// at startup; an atomic pointer keeps Hit a single load without a lock.
var armed atomic.Pointer[string]

func init() { Arm(os.Getenv(EnvVar)) }

// Arm sets the step Hit kills at ("" disarms). Only for tests; the daemon
// is armed from the environment at startup.
func Arm(name string) {
	if name == "" {
		armed.Store(nil)
		return
	}
	armed.Store(&name)
}

// killSelf is replaced by unit tests.
var killSelf = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }

// Hit kills the process when name is the armed step.
func Hit(name string) {
	if p := armed.Load(); p != nil && *p == name {
		killSelf()
		// SIGKILL to oneself is delivered before kill(2) returns to user
		// space; block in case it somehow is not, so the step never runs
		// on.
		select {}
	}
}
