//go:build floe_failpoints

package failpoint

import (
	"os"
	"sync/atomic"
	"syscall"
)

// Enabled reports whether this binary was built with failpoints.
const Enabled = true

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
