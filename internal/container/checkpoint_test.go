package container

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floe-cri/floe/internal/checkpoint"
	"github.com/floe-cri/floe/internal/errdefs"
)

// writeTestArchive makes a checkpoint archive of a container named name
// whose rootfs gained /marker.
func writeTestArchive(t *testing.T, name string) string {
	t.Helper()
	stage, src := t.TempDir(), t.TempDir()
	raw, err := json.Marshal(Spec{Name: name, Image: "busybox", Labels: map[string]string{"from": "checkpoint"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.WriteJSON(stage, checkpoint.ConfigFile, checkpoint.Config{
		Format: checkpoint.FormatVersion, Runtime: "floe", ID: "0123456789abcdef", Name: name, ImageID: fakeImageID, Container: raw,
	}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(stage, checkpoint.SpecFile), []byte("{}"), 0o600)
	os.WriteFile(filepath.Join(stage, checkpoint.StatusFile), []byte("{}"), 0o600)
	os.MkdirAll(filepath.Join(stage, checkpoint.ImagesDir), 0o700)
	os.WriteFile(filepath.Join(stage, checkpoint.ImagesDir, "inventory.img"), []byte("criu"), 0o600)
	os.WriteFile(filepath.Join(src, "marker"), []byte("hello"), 0o644)
	if err := checkpoint.WriteRootfsDiff(src, []string{"/marker"}, nil, filepath.Join(stage, checkpoint.RootfsDiffFile), filepath.Join(stage, checkpoint.DeletedFile)); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "c.tar")
	if _, err := checkpoint.WriteArchive(stage, archive); err != nil {
		t.Fatal(err)
	}
	return archive
}

// A restored container is created without a monitor, with the archive's
// rootfs changes; its start restores it through the runtime (which runs
// it at once), records it running and drops the criu images. Its
// removal works like any other.
func TestRestoredContainerStartsByRestoring(t *testing.T) {
	h := newHarness(t)
	archive := writeTestArchive(t, "counter")
	id, err := h.m.CreateRestored(context.Background(), testPod, RestoreRequest{Archive: archive, Name: "restored", Attempt: 2})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := h.m.Get(id)
	if c.State != StateCreated || c.Monitor != nil || c.Spec.Name != "restored" || c.Spec.Attempt != 2 || c.Spec.Labels["from"] != "checkpoint" ||
		c.ReportedImage() != archive || c.Spec.Restore == nil || c.Spec.Restore.FromID != "0123456789abcdef" {
		t.Fatalf("restored container record: %+v", c)
	}
	if data, err := os.ReadFile(filepath.Join(c.Rootfs, "marker")); err != nil || string(data) != "hello" {
		t.Fatalf("rootfs diff not applied: %q %v", data, err)
	}
	if err := h.m.Start(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	c, _ = h.m.Get(id)
	if c.State != StateRunning || c.Monitor == nil || h.rt.restoredFrom[id] != c.RestoreImages {
		t.Fatalf("after start: state %s monitor %v restored from %q (images %q)", c.State, c.Monitor, h.rt.restoredFrom[id], c.RestoreImages)
	}
	if _, err := os.Stat(c.RestoreImages); !os.IsNotExist(err) {
		t.Errorf("criu images kept after the restore: %v", err)
	}
	if err := h.m.Remove(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	h.waitRemoved(id)
}

// A handler that cannot checkpoint is refused before anything happens,
// and so is an archive that does not exist.
func TestCheckpointRefusals(t *testing.T) {
	h := newHarness(t)
	id := h.createStarted("a")
	_, err := h.m.Checkpoint(context.Background(), id, CheckpointOptions{Location: filepath.Join(t.TempDir(), "x.tar")})
	if errdefs.KindOf(err) != errdefs.KindFailedPrecondition || !strings.Contains(err.Error(), "cannot be checkpointed") {
		t.Fatalf("Checkpoint with a runtime that cannot = %v", err)
	}
	if err := h.m.HandlerCheckpointSupport("nope"); errdefs.KindOf(err) != errdefs.KindFailedPrecondition {
		t.Fatalf("HandlerCheckpointSupport(unknown) = %v", err)
	}
	if _, err := h.m.CreateRestored(context.Background(), testPod, RestoreRequest{Archive: "/nonexistent.tar", Name: "x"}); errdefs.KindOf(err) != errdefs.KindInvalidArgument {
		t.Fatalf("CreateRestored of a missing archive = %v", err)
	}
}
