package integration

import (
	"bytes"
	"os"
	"testing"

	"github.com/floe-cri/floe/internal/failpoint"
	"github.com/floe-cri/floe/test/harness"
)

// TestShippedBinaryHasNoFailpoints scans floe built as `make build` builds
// it for the failpoint variable: a binary that never reads it cannot be
// made to kill itself by one left in its environment. The failpoint build
// is scanned too, so the scan is known to find what it looks for.
func TestShippedBinaryHasNoFailpoints(t *testing.T) {
	contains := func(bin string) bool {
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Contains(data, []byte(failpoint.EnvVar))
	}
	if contains(harness.FloeBinary(t)) {
		t.Errorf("the production build of floe holds %q: failpoints must need the build tag %s", failpoint.EnvVar, failpoint.Tag)
	}
	if !contains(harness.FailpointBinary(t)) {
		t.Errorf("the failpoint build of floe (-tags %s) lacks %q: the crash tests cannot arm it", failpoint.Tag, failpoint.EnvVar)
	}
}
