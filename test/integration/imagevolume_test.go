package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/fixtures"
	"github.com/floe-cri/floe/test/harness"
)

// dataImage is an image that is only files: a volume, not a program.
func dataImage() *fixtures.Image {
	return &fixtures.Image{Layers: [][]fixtures.File{{
		{Path: "data", Mode: os.ModeDir | 0o755},
		{Path: "data/hello.txt", Mode: 0o644, Data: []byte("hello from the image volume\n")},
		{Path: "data/sub", Mode: os.ModeDir | 0o755},
		{Path: "data/sub/inner.txt", Mode: 0o644, Data: []byte("inner\n")},
		// Resolved inside the image, this is the image's /etc, which
		// it does not have; it must never reach the host's.
		{Path: "data/up", Link: "../../../../../etc"},
	}}}
}

// imageVolumeEnv is a container env with the data image pulled; the ids
// are what PullImage returned, which is what the kubelet puts in
// Mount.image.image.
type imageVolumeEnv struct {
	*containerEnv
	dataID, busyboxID string
	dataMount         string // where the store mounts the data image
}

func newImageVolumeEnv(t *testing.T, configTOML string) *imageVolumeEnv {
	t.Helper()
	e := newContainerEnvWith(t, containerEnvOptions{ConfigTOML: configTOML, Images: map[string]*fixtures.Image{"data:1": dataImage()}})
	img, info := imageStatus(t, e.d, e.images["data:1"])
	bb, _ := imageStatus(t, e.d, e.image)
	top := info.Layers[len(info.Layers)-1].ID
	return &imageVolumeEnv{containerEnv: e, dataID: img.Id, busyboxID: bb.Id,
		dataMount: filepath.Join(e.d.StorageRoot, "overlay", top, "merged")}
}

func imageMount(path, imageID, sub string) *runtimeapi.Mount {
	return &runtimeapi.Mount{ContainerPath: path, Readonly: true, ImageSubPath: sub,
		Image: &runtimeapi.ImageSpec{Image: imageID, UserSpecifiedImage: "data:1"}}
}

// hostMounts counts the host mounts at mp.
func hostMounts(mp string) int {
	n := 0
	for _, m := range harness.MountsUnder(mp) {
		if m == mp {
			n++
		}
	}
	return n
}

func (e *imageVolumeEnv) create(t *testing.T, cfg *runtimeapi.ContainerConfig) (string, error) {
	t.Helper()
	resp, err := e.d.Runtime.CreateContainer(harness.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: cfg, SandboxConfig: e.podCfg})
	return resp.GetContainerId(), err
}

func (e *imageVolumeEnv) remove(t *testing.T, id string) {
	t.Helper()
	if _, err := e.d.Runtime.RemoveContainer(harness.Ctx(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
}

func TestImageVolumesMountReadOnlyShareAndRelease(t *testing.T) {
	harness.CheckLeaks(t)
	e := newImageVolumeEnv(t, "")

	a := e.config("a", "sleep", "1000")
	a.Mounts = []*runtimeapi.Mount{
		imageMount("/vol", e.dataID, ""),
		imageMount("/sub", e.dataID, "data/sub/"),
		imageMount("/hello", e.dataID, "data/hello.txt"),
		imageMount("/bb", e.busyboxID, ""),
	}
	// As root, so only the mount can refuse the write below.
	a.Linux.SecurityContext.RunAsUser = i64(0)
	idA := e.run(t, a)
	if out, code := e.exec(t, idA, "cat", "/vol/data/hello.txt", "/sub/inner.txt", "/hello"); code != 0 || out != "hello from the image volume\ninner\nhello from the image volume" {
		t.Errorf("image volume contents: %q (exit %d)", out, code)
	}
	if out, code := e.exec(t, idA, "touch", "/vol/data/new"); code == 0 || !strings.Contains(out, "Read-only file system") {
		t.Errorf("wrote into a read-only image volume: %q", out)
	}
	// Programs of an image volume may run (critest checks this; CRI-O
	// and containerd mount without noexec).
	if out, code := e.exec(t, idA, "/bb/bin/busybox", "echo", "ran"); code != 0 || out != "ran" {
		t.Errorf("running a program from an image volume: %q (exit %d)", out, code)
	}
	st := e.status(t, idA)
	var vol, sub *runtimeapi.Mount
	for _, m := range st.Mounts {
		switch m.ContainerPath {
		case "/vol":
			vol = m
		case "/sub":
			sub = m
		}
	}
	if vol.GetImage().GetImage() != e.dataID || vol.GetImage().GetImageRef() != e.dataID || !vol.GetReadonly() || vol.GetHostPath() != "" {
		t.Errorf("status of the image volume: %v", vol)
	}
	if sub.GetImageSubPath() != "data/sub" || sub.GetImage().GetImageRef() != e.dataID {
		t.Errorf("status of the sub path volume: %v", sub)
	}
	if n := hostMounts(e.dataMount); n != 1 {
		t.Fatalf("the data image is mounted %d times on the host, want 1", n)
	}

	// A second container shares the one host mount of the image.
	b := e.config("b", "sleep", "1000")
	b.Mounts = []*runtimeapi.Mount{imageMount("/vol", e.dataID, "")}
	idB := e.run(t, b)
	if n := hostMounts(e.dataMount); n != 1 {
		t.Errorf("two containers: the data image is mounted %d times, want 1", n)
	}
	err := removeImage(t, e.d, e.dataID)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), idA) || !strings.Contains(err.Error(), idB) {
		t.Errorf("RemoveImage of an image used as a volume: %v, want FailedPrecondition naming %s and %s", err, idA, idB)
	}
	e.remove(t, idA)
	if n := hostMounts(e.dataMount); n != 1 {
		t.Errorf("after removing one of two users: the data image is mounted %d times, want 1", n)
	}
	if out, code := e.exec(t, idB, "cat", "/vol/data/hello.txt"); code != 0 || !strings.Contains(out, "hello") {
		t.Errorf("the other container lost its volume: %q (exit %d)", out, code)
	}

	// The hold survives a restart: the mount stays, and the record says
	// who holds it, so RemoveImage still refuses and the last remove
	// unmounts.
	e.d.StopLeavingContainers()
	e.d.Start()
	if n := hostMounts(e.dataMount); n != 1 {
		t.Errorf("after a restart: the data image is mounted %d times, want 1", n)
	}
	if st := e.status(t, idB); len(st.Mounts) == 0 || st.Mounts[0].GetImage().GetImageRef() != e.dataID {
		t.Errorf("status after a restart: %v", st.Mounts)
	}
	if err := removeImage(t, e.d, e.dataID); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("RemoveImage after a restart: %v, want FailedPrecondition", err)
	}
	e.remove(t, idB)
	e.remove(t, idB) // a second remove releases nothing twice
	if n := hostMounts(e.dataMount); n != 0 {
		t.Errorf("the data image is still mounted after its last user went: %v", harness.MountsUnder(e.dataMount))
	}
	if err := removeImage(t, e.d, e.dataID); err != nil {
		t.Errorf("RemoveImage once no container uses it: %v", err)
	}
}

func TestImageVolumeBadRequestsLeaveNothing(t *testing.T) {
	harness.CheckLeaks(t)
	e := newImageVolumeEnv(t, "")
	before := harness.MountsUnder(e.d.StorageRoot)
	cfg := func(m *runtimeapi.Mount) *runtimeapi.ContainerConfig {
		c := e.config("bad", "sleep", "1000")
		c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: e.logDir}, m}
		return c
	}
	notPulled := strings.Repeat("ab", 32)
	writable := imageMount("/vol", e.dataID, "")
	writable.Readonly = false
	cases := []struct {
		name   string
		mount  *runtimeapi.Mount
		code   codes.Code
		naming []string
	}{
		{"missing sub path", imageMount("/vol", e.dataID, "data/nope"), codes.NotFound, []string{"mounts[1].image_sub_path", "data/nope"}},
		{"sub path through a link out of the image", imageMount("/vol", e.dataID, "data/up/passwd"), codes.NotFound, []string{"mounts[1].image_sub_path", "data/up/passwd"}},
		{"escaping sub path", imageMount("/vol", e.dataID, "data/../../etc"), codes.InvalidArgument, []string{"mounts[1].image_sub_path"}},
		{"absolute sub path", imageMount("/vol", e.dataID, "/etc"), codes.InvalidArgument, []string{"mounts[1].image_sub_path"}},
		{"image not pulled", imageMount("/vol", notPulled, ""), codes.NotFound, []string{"mounts[1].image", notPulled, "/vol"}},
		{"writable", writable, codes.InvalidArgument, []string{"mounts[1].readonly"}},
	}
	for _, c := range cases {
		_, err := e.create(t, cfg(c.mount))
		if status.Code(err) != c.code {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
			continue
		}
		for _, s := range c.naming {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %v does not name %s", c.name, err, s)
			}
		}
		if after := harness.MountsUnder(e.d.StorageRoot); len(after) != len(before) {
			t.Errorf("%s: left mounts: %v (before %v)", c.name, after, before)
		}
	}
	if r, _ := e.d.Runtime.ListContainers(harness.Ctx(t), &runtimeapi.ListContainersRequest{}); len(r.GetContainers()) != 0 {
		t.Errorf("failed creations left containers: %v", r.Containers)
	}
	// The same name works once the request is right.
	id := e.run(t, cfg(imageMount("/vol", e.dataID, "data")))
	if out, code := e.exec(t, id, "cat", "/vol/hello.txt"); code != 0 || !strings.Contains(out, "hello") {
		t.Errorf("image volume after failed attempts: %q (exit %d)", out, code)
	}
}

func TestKill9DuringCreateWithImageVolumeReleasesItOnRestart(t *testing.T) {
	harness.CheckLeaks(t)
	e := newImageVolumeEnv(t, fmt.Sprintf("[runtimes.runc]\nruntime_path = %q\n", slowRuntime(t, 2)))
	cfg := e.config("interrupted", "sleep", "1000")
	cfg.Mounts = []*runtimeapi.Mount{imageMount("/vol", e.dataID, "")}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if _, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: cfg, SandboxConfig: e.podCfg}); err == nil {
		t.Fatal("creation with a 2s runtime finished within 1.5s")
	}
	if n := hostMounts(e.dataMount); n != 1 {
		t.Fatalf("during the create the data image is mounted %d times, want 1", n)
	}
	e.d.Kill9()
	e.d.Start()
	if !strings.Contains(e.d.Log(), "undoing a container whose creation was interrupted") {
		t.Errorf("restart did not undo the interrupted creation")
	}
	if n := hostMounts(e.dataMount); n != 0 {
		t.Errorf("the undone creation left its image volume mounted")
	}
	time.Sleep(3 * time.Second) // the slow runc create finishes and is cleaned up
	id := e.run(t, cfg)
	if out, code := e.exec(t, id, "cat", "/vol/data/hello.txt"); code != 0 || !strings.Contains(out, "hello") {
		t.Errorf("image volume after the restart: %q (exit %d)", out, code)
	}
	e.remove(t, id)
	if n := hostMounts(e.dataMount); n != 0 {
		t.Errorf("the data image stays mounted after remove")
	}
}
