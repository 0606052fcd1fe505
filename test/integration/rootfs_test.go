// The container rootfs API of internal/images, driven directly: no CRI RPC
// creates containers yet. It lives here so it runs serially with the other
// leak-checked tests.
package integration

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/images"
	"github.com/floe-cri/floe/test/fixtures"
	"github.com/floe-cri/floe/test/harness"

	"go.podman.io/storage"
)

// openService opens a Service on a store in a temp dir that trusts reg.
func openService(t *testing.T, reg *fixtures.Registry) (*images.Service, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "floe-images-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		harness.UnmountUnder(t, dir)
		os.RemoveAll(dir)
	})
	conf := fixtures.WriteFile(t, dir, "registries.conf", reg.RegistriesConf(true))
	for _, d := range []string{"state", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s, err := images.New(images.Options{
		StorageRoot:         filepath.Join(dir, "root"),
		StorageRunRoot:      filepath.Join(dir, "runroot"),
		Driver:              "overlay",
		MountOptions:        []string{"nodev", "metacopy=on"},
		RegistriesConf:      conf,
		RegistriesConfDir:   filepath.Join(dir, "registries.d"),
		PullProgressTimeout: time.Minute,
		StateDir:            filepath.Join(dir, "state"),
		RunDir:              filepath.Join(dir, "run"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

// mountOptions returns the super options of the mount at mp.
func mountOptions(t *testing.T, mp string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == mp {
			return f[len(f)-1]
		}
	}
	t.Fatalf("%s is not a mount point", mp)
	return ""
}

func mountsUnder(t *testing.T, dir string, open *images.Service) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// The overlay driver keeps its home (root/overlay) mounted
		// while the store is open; only layer mounts count here.
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") && (open == nil || f[4] != filepath.Join(dir, "root", "overlay")) {
			out = append(out, f[4])
		}
	}
	return out
}

func TestContainerLayerLifecycle(t *testing.T) {
	harness.RequireRoot(t)
	checkImageLeaks(t)
	reg := fixtures.StartRegistry(t, fixtures.RegistryOptions{})
	bb := reg.PushBusybox(t, "busybox:1")
	s, dir := openService(t, reg)
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := s.Pull(ctx, "busybox:1", nil)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}

	const ctr = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
	mp, err := s.CreateContainerLayer(bb.Ref, ctr, "k8s_test_ctr")
	if err != nil {
		t.Fatalf("CreateContainerLayer: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(mp, "bin", "busybox")); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("rootfs lacks an executable /bin/busybox: %v", err)
	}
	// The kernel here accepts metacopy=on (see openService), so the
	// rootfs must be mounted with it.
	if opts := mountOptions(t, mp); !strings.Contains(opts, "metacopy=on") {
		t.Errorf("rootfs %s mounted without metacopy=on: %s", mp, opts)
	}
	if err := os.WriteFile(filepath.Join(mp, "tmp", "written"), make([]byte, 256<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ctrs, err := s.FsInfo(); err != nil || ctrs.UsedBytes < 256<<10 {
		t.Errorf("container filesystem use %d bytes (err %v), want at least the 256 KiB written", ctrs.UsedBytes, err)
	}
	if _, err := s.CreateContainerLayer(bb.Ref, ctr, "k8s_test_ctr"); errdefs.KindOf(err) != errdefs.KindAlreadyExists {
		t.Errorf("second CreateContainerLayer with the same id: %v", err)
	}

	err = s.Remove(id)
	if errdefs.KindOf(err) != errdefs.KindFailedPrecondition || !strings.Contains(err.Error(), ctr) {
		t.Fatalf("Remove of an image in use: %v, want FailedPrecondition naming %s", err, ctr)
	}

	if err := s.UnmountContainerLayer(ctr); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, dir, s); len(m) != 0 {
		t.Errorf("mounts left after UnmountContainerLayer: %v", m)
	}
	if mp2, err := s.MountContainerLayer(ctr); err != nil || mp2 != mp {
		t.Errorf("remount: %q, %v (first %q)", mp2, err, mp)
	}
	if _, err := os.Stat(filepath.Join(mp, "tmp", "written")); err != nil {
		t.Errorf("writable layer lost its file across remount: %v", err)
	}
	if err := s.DeleteContainerLayer(ctr); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteContainerLayer(ctr); err != nil {
		t.Errorf("DeleteContainerLayer is not idempotent: %v", err)
	}
	if err := s.Remove(id); err != nil {
		t.Fatalf("Remove after the container is gone: %v", err)
	}
	closed = true
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, dir, nil); len(m) != 0 {
		t.Errorf("mounts left after Close: %v", m)
	}
}

// TestDeleteContainerLayerRemovesOrphanedLayer: containers/storage records
// a container's writable layer before the container itself, so floe killed
// between the two leaves a layer no container names (found by the crash
// test). The layer carries the container's id, so the undo after the
// restart (DeleteContainerLayer of that id) deletes it.
func TestDeleteContainerLayerRemovesOrphanedLayer(t *testing.T) {
	harness.RequireRoot(t)
	checkImageLeaks(t)
	reg := fixtures.StartRegistry(t, fixtures.RegistryOptions{})
	bb := reg.PushBusybox(t, "busybox:1")
	s, dir := openService(t, reg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Pull(ctx, "busybox:1", nil); err != nil {
		t.Fatalf("Pull: %v", err)
	}
	img, err := s.Status(bb.Ref)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	// What the crash leaves: the layer, with the id floe gives it, and no
	// container.
	const ctr = "0ddba11e0ddba11e0ddba11e0ddba11e0ddba11e0ddba11e0ddba11e0ddba11e"
	storeOpts := storage.StoreOptions{GraphRoot: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "runroot"), GraphDriverName: "overlay"}
	raw, err := storage.GetStore(storeOpts)
	if err != nil {
		t.Fatal(err)
	}
	rawImg, err := raw.Image(img.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.CreateLayer(ctr, rawImg.TopLayer, nil, "", true, nil); err != nil {
		t.Fatalf("create the orphaned layer: %v", err)
	}
	raw.Shutdown(true)

	s2, err := images.New(images.Options{
		StorageRoot: storeOpts.GraphRoot, StorageRunRoot: storeOpts.RunRoot, Driver: "overlay",
		RegistriesConf: filepath.Join(dir, "registries.conf"), RegistriesConfDir: filepath.Join(dir, "registries.d"),
		PullProgressTimeout: time.Minute, StateDir: filepath.Join(dir, "state"), RunDir: filepath.Join(dir, "run"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.DeleteContainerLayer(ctr); err != nil {
		t.Fatalf("DeleteContainerLayer of the orphaned layer: %v", err)
	}
	s2.Close()

	raw, err = storage.GetStore(storeOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Shutdown(true)
	if _, err := raw.Layer(ctr); !errors.Is(err, storage.ErrLayerUnknown) {
		t.Errorf("the orphaned layer is still in the store: %v", err)
	}
}
