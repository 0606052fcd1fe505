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
	code := m.Run()
	harness.RemoveBinary()
	os.Exit(code)
}
