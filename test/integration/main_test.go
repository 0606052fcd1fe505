package integration

import (
	"os"
	"testing"

	"github.com/floe-cri/floe/test/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.RemoveBinary()
	os.Exit(code)
}
