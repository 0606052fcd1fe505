// Package needs decides what a test does when something it depends on is
// missing from the machine: on a developer's machine it skips, with the
// reason; under CI=true, where hack/install-deps.sh has installed every
// such dependency, the absence means a broken machine or install script,
// so the test fails instead of passing by skipping.
//
// Only for dependencies install-deps.sh installs (or the Makefile builds).
// Conditions that are facts of the host (its cgroup layout, root or not,
// systemd running) remain plain skips.
package needs

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI, where every dependency
// install-deps.sh names must be present.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test (fails it under CI=true) because what is absent;
// err, if any, says why it was found missing.
func Missing(t testing.TB, what string, err error) {
	t.Helper()
	msg := fmt.Sprintf("%s is missing (hack/install-deps.sh installs it)", what)
	if err != nil {
		msg += ": " + err.Error()
	}
	if InCI() {
		t.Fatalf("CI=true: %s", msg)
	}
	t.Skip(msg)
}

// Binary returns the path of the program name (a name looked up in PATH,
// or a path), skipping the test, or failing it under CI=true, when it is
// not there.
func Binary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name, err)
	}
	return path
}

// File checks that path exists; what names it for the message.
func File(t testing.TB, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, what, err)
	}
}
