package version

import (
	"os/exec"
	"path/filepath"
	"testing"
)

func TestConstants(t *testing.T) {
	if Name != "floe" || CRIAPIVersion != "v1" || Version == "" {
		t.Errorf("Name %q CRIAPIVersion %q Version %q", Name, CRIAPIVersion, Version)
	}
}

// The -X flag the package comment documents must
// set Version: it silently does nothing if the path is wrong or Version
// becomes a constant.
func TestLdflagsSetVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	bin := filepath.Join(t.TempDir(), "printversion")
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X github.com/floe-cri/floe/internal/version.Version=9.8.7-test", "./testdata/printversion")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil || string(out) != "9.8.7-test" {
		t.Errorf("version = %q %v", out, err)
	}
}
