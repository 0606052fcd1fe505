package userns

import (
	"os"
	"path/filepath"
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
	a, err := LoadSubIDs(SubIDUser, filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid"))
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
