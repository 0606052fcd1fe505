package nspin

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// sharedBase is a tmpfs of its own, shared like / is on most hosts, under
// which a test makes its netns dirs. It is detached, with all under it, at
// the end of the test.
func sharedBase(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("pinning namespaces needs root")
	}
	base := t.TempDir()
	if err := unix.Mount("floe-nspin-test", base, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(base, unix.MNT_DETACH) })
	if err := unix.Mount("", base, "none", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	return base
}

// mountsAtPath counts the mounts whose mount point is path, hidden ones
// included.
func mountsAtPath(t *testing.T, path string) int {
	t.Helper()
	// Not SingleEntryFilter: it stops at the first match.
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return m.Mountpoint != path, false
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

// bindInParentGroup makes dir the way a plain `mount --bind dir dir` (and
// floe before this fix) does: a mount in its parent's peer group.
func bindInParentGroup(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		t.Fatal(err)
	}
}

func pinNet(t *testing.T, path string) {
	t.Helper()
	if err := Pin(Request{NetPath: path}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Unpin(path) })
}

func TestPrepareNetnsDirPinsOnce(t *testing.T) {
	base := sharedBase(t)
	dir := filepath.Join(base, "netns")
	if warning, err := PrepareNetnsDir(dir); err != nil || warning != "" {
		t.Fatalf("PrepareNetnsDir = %q, %v", warning, err)
	}
	// A second call (another daemon, a restart) changes nothing.
	if warning, err := PrepareNetnsDir(dir); err != nil || warning != "" {
		t.Fatalf("second PrepareNetnsDir = %q, %v", warning, err)
	}
	if n := mountsAtPath(t, dir); n != 1 {
		t.Fatalf("%d mounts at %s, want 1", n, dir)
	}
	pin := filepath.Join(dir, "pod-a")
	pinNet(t, pin)
	if n := mountsAtPath(t, pin); n != 1 {
		t.Fatalf("the pin is mounted %d times, want once", n)
	}
	// Still shared, so pins propagate into mount namespaces copied from
	// the host after the dir was set up.
	ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	if err != nil || len(ms) != 1 || sharedGroup(ms[0]) == "" {
		t.Fatalf("netns dir is not shared: %+v %v", ms, err)
	}
	if err := Unpin(pin); err != nil {
		t.Fatal(err)
	}
	if n := mountsAtPath(t, pin); n != 0 {
		t.Fatalf("%d mounts left at %s after Unpin", n, pin)
	}
}

func TestPrepareNetnsDirMovesAnEmptyDirOutOfItsParentsGroup(t *testing.T) {
	base := sharedBase(t)
	dir := filepath.Join(base, "netns")
	bindInParentGroup(t, dir)
	// What the fix is for: without it a pin here is mounted twice.
	probe := filepath.Join(dir, "probe")
	pinNet(t, probe)
	if n := mountsAtPath(t, probe); n != 2 {
		t.Fatalf("a pin under a bind in its parent's group is mounted %d times; the test expects the kernel to double it", n)
	}
	if err := Unpin(probe); err != nil {
		t.Fatal(err)
	}
	if warning, err := PrepareNetnsDir(dir); err != nil || warning != "" {
		t.Fatalf("PrepareNetnsDir = %q, %v", warning, err)
	}
	pin := filepath.Join(dir, "pod-a")
	pinNet(t, pin)
	if n := mountsAtPath(t, pin); n != 1 {
		t.Fatalf("the pin is mounted %d times, want once", n)
	}
}

func TestPrepareNetnsDirLeavesADirWithPinsAndSaysSo(t *testing.T) {
	base := sharedBase(t)
	dir := filepath.Join(base, "netns")
	bindInParentGroup(t, dir)
	pin := filepath.Join(dir, "pod-a")
	pinNet(t, pin)
	warning, err := PrepareNetnsDir(dir)
	if err != nil || warning == "" {
		t.Fatalf("PrepareNetnsDir = %q, %v; want a warning", warning, err)
	}
	// Left in its parent's group, unpinning still removes both copies.
	if err := Unpin(pin); err != nil {
		t.Fatal(err)
	}
	if n := mountsAtPath(t, pin); n != 0 {
		t.Fatalf("%d mounts left at %s after Unpin", n, pin)
	}
}
