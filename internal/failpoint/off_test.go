//go:build !floe_failpoints

package failpoint

import (
	"os/exec"
	"strings"
	"testing"
)

// Without the tag the variable does nothing: a step named in it is
// passed like any other.
func TestHitIgnoresTheVariableWithoutTheTag(t *testing.T) {
	t.Setenv(EnvVar, "sandbox.after-pin")
	Hit("sandbox.after-pin")
	if Enabled {
		t.Fatal("Enabled without the floe_failpoints tag")
	}
}

// Hit must cost nothing in the shipped binary: the compiler inlines the
// empty function at every call site.
func TestHitIsInlinable(t *testing.T) {
	out, err := exec.Command("go", "build", "-gcflags=-m", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -gcflags=-m: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "can inline Hit") {
		t.Errorf("Hit is not inlinable:\n%s", out)
	}
}
