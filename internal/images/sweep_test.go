package images

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
)

func TestSweepTempFilesRemovesOnlyInterruptedWrites(t *testing.T) {
	root, runRoot := t.TempDir(), t.TempDir()
	write := func(path string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("[]"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	garbage := []string{
		filepath.Join(root, "overlay-containers", ".tmp-containers.json2305844071"),
		filepath.Join(root, "overlay-layers", ".tmp-layers.json1"),
		filepath.Join(root, "overlay-images", ".tmp-images.json2"),
		filepath.Join(runRoot, "overlay-layers", ".tmp-mountpoints.json3"),
	}
	kept := []string{
		filepath.Join(root, "overlay-containers", "containers.json"),
		filepath.Join(root, "overlay-layers", "layers.json"),
		filepath.Join(root, "overlay", ".tmp-not-metadata"), // a layer dir's business
	}
	for _, p := range append(append([]string{}, garbage...), kept...) {
		write(p)
	}
	removed, err := sweepTempFiles(root, runRoot, "overlay")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(removed)
	want := append([]string{}, garbage...)
	sort.Strings(want)
	if len(removed) != len(want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
	for i := range want {
		if removed[i] != want[i] {
			t.Fatalf("removed %v, want %v", removed, want)
		}
	}
	for _, p := range garbage {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	for _, p := range kept {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
	// Nothing to do is no error (a fresh store has none of the dirs).
	if _, err := sweepTempFiles(t.TempDir(), t.TempDir(), "overlay"); err != nil {
		t.Errorf("empty store: %v", err)
	}
}
