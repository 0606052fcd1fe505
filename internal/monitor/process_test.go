package monitor

import (
	"os"
	"syscall"
	"testing"
)

func TestMaskHas(t *testing.T) {
	// SIGTERM is 15: bit 14.
	for _, tc := range []struct {
		hex  string
		sig  syscall.Signal
		want bool
	}{{"0000000000004000", syscall.SIGTERM, true}, {"0000000000000002", syscall.SIGTERM, false}, {"0000000000000001", syscall.SIGHUP, true}} {
		got, ok := maskHas(tc.hex, tc.sig)
		if !ok || got != tc.want {
			t.Errorf("maskHas(%s, %d) = %v, %v", tc.hex, tc.sig, got, ok)
		}
	}
	if _, ok := maskHas("zz", syscall.SIGTERM); ok {
		t.Error("a malformed mask parsed")
	}
	// The test process is not PID 1 of its namespace (on a normal host),
	// so nothing sent to it is dropped that way.
	if signalWouldBeDropped(os.Getpid(), syscall.SIGTERM) {
		t.Error("a process that is not a namespace's PID 1 reported as dropping signals")
	}
}
