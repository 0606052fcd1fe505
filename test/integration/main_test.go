package integration

import (
	"os"
	"testing"

	"github.com/floe-cri/floe/test/harness"
)

func TestMain(m *testing.M) {
	// Packages running real containers take turns: the leak checks see
	// host-wide processes.
	unlock := harness.MustLockHost()
	code := m.Run()
	unlock()
	harness.RemoveBinary()
	os.Exit(code)
}
