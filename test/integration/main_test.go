package integration

import (
	"os"
	"testing"

	"github.com/floe-cri/floe/test/harness"

	"go.podman.io/storage/pkg/reexec"
)

func TestMain(m *testing.M) {
	// containers/storage re-executes the test binary to apply layers in a
	// chroot (TestContainerLayerLifecycle uses internal/images directly).
	if reexec.Init() {
		return
	}
	// Packages running real containers take turns: the leak checks see
	// host-wide processes.
	unlock := harness.MustLockHost()
	code := m.Run()
	unlock()
	harness.RemoveBinary()
	os.Exit(code)
}
