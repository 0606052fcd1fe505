package sandbox

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/floe-cri/floe/internal/objects"
	"github.com/floe-cri/floe/internal/store"
	"github.com/floe-cri/floe/internal/userns"
)

// Ids floe picked for a pod (userns-mode=auto) are no part of the request's
// identity: a kubelet retry of the same request may be offered other ids
// and must still find its pod.
func TestAutoUsernsIsNotPartOfTheRequestHash(t *testing.T) {
	a := Spec{Name: "p", Namespace: "n", UID: "u", UserNSAuto: true,
		UserNS: &userns.Mappings{UIDs: []userns.IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}, GIDs: []userns.IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}}}
	b := a
	b.UserNS = &userns.Mappings{UIDs: []userns.IDMap{{ContainerID: 0, HostID: 165536, Size: 65536}}, GIDs: []userns.IDMap{{ContainerID: 0, HostID: 165536, Size: 65536}}}
	if a.hash() != b.hash() {
		t.Error("auto mappings changed the request hash")
	}
	a.UserNSAuto, b.UserNSAuto = false, false
	if a.hash() == b.hash() {
		t.Error("the kubelet's mappings are part of the request")
	}
}

// The ids in use are read from the pods' records, so what a restarted
// floe hands out never overlaps a pod that outlived the old one.
func TestUserNamespacesSurviveRestore(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	maps := &userns.Mappings{UIDs: []userns.IDMap{{ContainerID: 0, HostID: 200000, Size: 8192}}, GIDs: []userns.IDMap{{ContainerID: 0, HostID: 200000, Size: 8192}}}
	// A ready pod with no pins to check (no netns, no IPC): Restore keeps it.
	rec := &Sandbox{Meta: objects.Meta{ID: "a1"}, Spec: Spec{Name: "p", Namespace: "n", UserNS: maps, UserNSAuto: true}, State: StateNotReady}
	if err := db.Put(store.Sandboxes, rec.ID, rec); err != nil {
		t.Fatal(err)
	}
	m := New(Options{DB: db})
	defer m.Close()
	if err := m.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := m.UserNamespaces()
	if len(got) != 1 || !got[0].Equal(maps) {
		t.Errorf("after restore: %+v", got)
	}
}
