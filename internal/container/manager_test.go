package container

import (
	"context"
	"testing"
	"time"

	"github.com/floe-cri/floe/internal/ocispec"
)

// An exit that lands while a resource update runs must stay recorded:
// the update must not write back the running record it read before.
func TestUpdateResourcesKeepsAConcurrentExit(t *testing.T) {
	h := newHarness(t)
	id := h.createStarted("c")
	h.rt.onUpdate = func(id string) {
		// The container exits while runc update runs; give the exit
		// watcher the time to record it (it cannot while the update
		// holds the container).
		h.rt.exit(id, 0)
		deadline := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(deadline) {
			if c, err := h.m.Get(id); err == nil && c.State == StateExited {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	if err := h.m.UpdateResources(context.Background(), id, ocispec.Resources{CPUShares: 512}); err != nil {
		t.Fatal(err)
	}
	h.waitState(id, StateExited)
	if c, _ := h.m.Get(id); c.Spec.OCI.Resources.CPUShares != 512 {
		t.Errorf("resources not recorded: %+v", c.Spec.OCI.Resources)
	}
}
