package userns

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAllocatorNoOverlapAndPending(t *testing.T) {
	dir := t.TempDir()
	sub := "# comment\nother:100000:65536\ncontainers:200000:196608\n"
	for _, n := range []string{"subuid", "subgid"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(sub), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a, err := NewAllocator(SubIDUser, filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid"))
	if err != nil {
		t.Fatal(err)
	}
	// A pod the kubelet mapped sits in the middle of the range.
	kubelet := &Mappings{UIDs: []IDMap{{0, 265536, 65536}}, GIDs: []IDMap{{0, 265536, 65536}}}
	m1, rel1, err := a.Allocate(65536, []*Mappings{kubelet})
	if err != nil || m1.UIDs[0].HostID != 200000 {
		t.Fatalf("first: %+v %v", m1, err)
	}
	// m1 is pending (not recorded yet): the next one avoids it and the
	// kubelet's pod.
	m2, rel2, err := a.Allocate(65536, []*Mappings{kubelet})
	if err != nil || m2.UIDs[0].HostID != 331072 || m2.GIDs[0].HostID != 331072 {
		t.Fatalf("second: %+v %v", m2, err)
	}
	if _, _, err := a.Allocate(1, []*Mappings{kubelet}); err == nil {
		t.Error("allocated past the end of the subordinate ids")
	}
	// Once recorded, pods are in inUse; released pending entries free
	// nothing twice.
	rel1()
	rel1()
	rel2()
	m3, rel3, err := a.Allocate(1000, []*Mappings{kubelet, &m1})
	if err != nil || m3.UIDs[0].HostID != 331072 {
		t.Fatalf("after release: %+v %v", m3, err)
	}
	rel3()
	if m3.UIDs[0].ContainerID != 0 || m3.UIDs[0].Size != 1000 {
		t.Errorf("mapping %+v", m3.UIDs[0])
	}
}

// An allocator without ranges refuses with the reason, and a later Load
// (SIGHUP) after the operator adds ranges makes it hand them out.
func TestAllocatorRefusesWithoutRangesUntilReload(t *testing.T) {
	dir := t.TempDir()
	uid, gid := filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid")
	for _, p := range []string{uid, gid} {
		if err := os.WriteFile(p, []byte("someone:100000:65536\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a, err := NewAllocator("containers", uid, gid)
	if err == nil {
		t.Fatal("no error for files without the user's ranges")
	}
	if _, _, err := a.Allocate(1024, nil); err == nil || !strings.Contains(err.Error(), `no ranges for user "containers"`) {
		t.Fatalf("allocate without ranges: %v", err)
	}
	for _, p := range []string{uid, gid} {
		if err := os.WriteFile(p, []byte("containers:500000:65536\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Load(); err != nil {
		t.Fatal(err)
	}
	m, release, err := a.Allocate(1024, nil)
	if err != nil || m.UIDs[0].HostID != 500000 {
		t.Fatalf("after reload: %+v %v", m, err)
	}
	release()
	// A missing file is a reason too, not a panic.
	os.Remove(gid)
	if err := a.Load(); err == nil {
		t.Fatal("load with a missing subgid file succeeded")
	}
	if _, _, err := a.Allocate(1, nil); err == nil {
		t.Fatal("allocated after the ranges went away")
	}
}
