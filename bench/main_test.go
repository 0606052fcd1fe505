package bench

import (
	"os"
	"testing"

	"go.podman.io/storage/pkg/reexec"

	"github.com/floe-cri/floe/test/harness"
)

// TestMain holds the host test lock while benchmarks run, so no other
// package's tests share the machine's namespaces, cgroups and CPU with a
// measurement, and removes the floe binary the harness built.
func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	unlock := harness.MustLockHost()
	code := m.Run()
	unlock()
	harness.RemoveBinary()
	os.Exit(code)
}
