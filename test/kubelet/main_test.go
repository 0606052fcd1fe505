// Package kubelet runs the real kubelet (standalone: static pods, no API
// server) against a private floe daemon. The kubelet binary is built by
// `make kubelet` (hack/build-kubelet.sh) into a cache outside the repo.
package kubelet

import (
	"os"
	"testing"

	"github.com/floe-cri/floe/test/harness"
)

func TestMain(m *testing.M) {
	// Real containers and host-wide leak checks: take turns with the other
	// test packages.
	unlock := harness.MustLockHost()
	code := m.Run()
	unlock()
	harness.RemoveBinary()
	os.Exit(code)
}
