package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/cgroups"
	"github.com/floe-cri/floe/internal/inspect"
	"github.com/floe-cri/floe/test/harness"
)

// kubeletResources is what a kubelet v1.37 sends for a container with a
// 64Mi memory limit and no CPU request on a cgroup v1 node with 2Mi and
// 1Gi huge pages: the minimum shares, the CFS period, swap equal to the
// memory limit (no swap) and a zero limit for every page size.
func kubeletResources() *runtimeapi.LinuxContainerResources {
	return &runtimeapi.LinuxContainerResources{
		CpuShares: 2, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 64 << 20,
		OomScoreAdj: 1000,
		HugepageLimits: []*runtimeapi.HugepageLimit{
			{PageSize: "2MB", Limit: 0}, {PageSize: "1GB", Limit: 0},
		},
	}
}

func TestKubeletDefaultsStartAndRealHugepageLimitIsRefused(t *testing.T) {
	harness.CheckLeaks(t)
	host, err := cgroups.Detect(cgroups.HostPaths)
	if err != nil {
		t.Fatal(err)
	}
	if host.Has(cgroups.CtrlHugetlb) {
		t.Skipf("runc can set hugetlb limits on this host (%s); this test is about hosts where it cannot", host.Summary())
	}
	parent := kubeletCgroup(t, 0)
	e := newContainerEnvWith(t, containerEnvOptions{Pod: func(p *runtimeapi.PodSandboxConfig) { p.Linux.CgroupParent = parent }})
	ctx := harness.Ctx(t)
	imgStatus, err := e.d.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: e.image}})
	if err != nil || imgStatus.Image == nil {
		t.Fatalf("ImageStatus: %v", err)
	}
	imageID := imgStatus.Image.Id

	// As the kubelet asks: image.image is the resolved ID, the pod spec's
	// name comes as user_specified_image.
	cfg := e.config("defaults", "sleep", "1000")
	cfg.Image = &runtimeapi.ImageSpec{Image: imageID, UserSpecifiedImage: e.image}
	cfg.Linux.Resources = kubeletResources()
	id := e.run(t, cfg)
	st := e.status(t, id)
	if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("state %v", st.State)
	}
	if st.Image.GetImage() != e.image || st.Image.GetUserSpecifiedImage() != e.image {
		t.Errorf("status image %+v, want %q (the user's name) in image and user_specified_image", st.Image, e.image)
	}
	if st.ImageId != imageID || !strings.Contains(st.ImageRef, "@sha256:") {
		t.Errorf("image_id %q (want %q), image_ref %q (want a repo digest)", st.ImageId, imageID, st.ImageRef)
	}
	list, err := e.d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{Id: id}})
	if err != nil || len(list.Containers) != 1 || list.Containers[0].Image.GetImage() != e.image || list.Containers[0].ImageId != imageID {
		t.Errorf("ListContainers: %v %+v", err, list.GetContainers())
	}
	// Everything but the hugetlb entries reached the cgroup; the limits
	// the kubelet asked for are reported back as asked.
	cg := parent + "/floe-" + id
	if got := cgroupFile(t, "memory", cg, "memory.limit_in_bytes"); got != strconv.Itoa(64<<20) {
		t.Errorf("memory.limit_in_bytes %s", got)
	}
	if host.MemorySwap {
		if got := cgroupFile(t, "memory", cg, "memory.memsw.limit_in_bytes"); got != strconv.Itoa(64<<20) {
			t.Errorf("memory.memsw.limit_in_bytes %s", got)
		}
	}
	if got := cgroupFile(t, "cpu", cg, "cpu.shares"); got != "2" {
		t.Errorf("cpu.shares %s", got)
	}
	if r := st.GetResources().GetLinux(); len(r.GetHugepageLimits()) != 2 || r.GetMemorySwapLimitInBytes() != 64<<20 {
		t.Errorf("status resources %v", r)
	}
	if !strings.Contains(e.d.Log(), "limit left out of the container's cgroup") || !strings.Contains(e.d.Log(), "hugepage_limits[1]") {
		t.Error("no debug line for the left-out hugepage limits")
	}

	// A real 2Mi limit is refused before anything is made.
	bundles := func() int {
		entries, _ := os.ReadDir(filepath.Join(e.d.RunDir, "containers"))
		return len(entries)
	}
	before := bundles()
	real := e.config("hugepages", "sleep", "1000")
	real.Linux.Resources = kubeletResources()
	real.Linux.Resources.HugepageLimits[0].Limit = 2 << 20
	_, err = e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: real, SandboxConfig: e.podCfg})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "hugetlb") || !strings.Contains(err.Error(), "hugepage_limits[0]") {
		t.Fatalf("CreateContainer with 2Mi of huge pages: %v, want FailedPrecondition naming hugetlb", err)
	}
	t.Logf("refused: %v", err)
	all, _ := e.d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if len(all.Containers) != 1 || bundles() != before {
		t.Errorf("refused creation left something: %d containers, %d bundles (was %d)", len(all.Containers), bundles(), before)
	}
	// The same name is free: nothing was reserved.
	real.Linux.Resources.HugepageLimits[0].Limit = 0
	id2 := e.run(t, real)

	// UpdateContainerResources decides the same way.
	upd := kubeletResources()
	upd.MemoryLimitInBytes, upd.MemorySwapLimitInBytes = 32<<20, 32<<20
	if _, err := e.d.Runtime.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id, Linux: upd}); err != nil {
		t.Fatalf("UpdateContainerResources with the kubelet's defaults: %v", err)
	}
	if got := cgroupFile(t, "memory", cg, "memory.limit_in_bytes"); got != strconv.Itoa(32<<20) {
		t.Errorf("after update memory.limit_in_bytes %s", got)
	}
	upd.HugepageLimits[1].Limit = 1 << 30
	if _, err := e.d.Runtime.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id, Linux: upd}); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "hugetlb") {
		t.Errorf("UpdateContainerResources with 1Gi of huge pages: %v", err)
	}

	// The controllers found are in the verbose Status and /info.
	rs, err := e.d.Runtime.Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Cgroups *cgroups.Support }
	if err := json.Unmarshal([]byte(rs.Info["info"]), &info); err != nil || info.Cgroups == nil || info.Cgroups.Mode != host.Mode || !info.Cgroups.Has("memory") {
		t.Errorf("Status info cgroups: %v %+v", err, info.Cgroups)
	}
	in, err := inspect.NewClient(e.d.InspectSocket).Info(ctx)
	if err != nil || in.Cgroups == nil || strings.Join(in.Cgroups.Controllers, " ") != strings.Join(host.Controllers, " ") {
		t.Errorf("/info cgroups: %v %+v", err, in)
	}

	for _, c := range []string{id, id2} {
		if _, err := e.d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
}

func TestCreateContainerImageNotPresentFailsFast(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	ctx := harness.Ctx(t)
	for _, img := range []*runtimeapi.ImageSpec{
		{Image: "localhost/floe-test/no-such-image:1", UserSpecifiedImage: "localhost/floe-test/no-such-image:1"},
		{Image: "sha256:" + strings.Repeat("0", 64), UserSpecifiedImage: "floe-test/bad-image:latest"},
	} {
		cfg := e.config("bad-image", "true")
		cfg.Image = img
		start := time.Now()
		_, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: cfg, SandboxConfig: e.podCfg})
		took := time.Since(start)
		if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), img.UserSpecifiedImage) {
			t.Errorf("CreateContainer with %v: %v, want NotFound naming %q", img, err, img.UserSpecifiedImage)
		}
		if took > 2*time.Second {
			t.Errorf("took %v to refuse a missing image", took)
		}
		t.Logf("%v in %v", err, took)
	}
	// Nothing is left: the name is free for a good image.
	id := e.run(t, e.config("bad-image", "true"))
	e.waitExited(t, id)
	if _, err := e.d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
}

func TestContainerRecursiveReadOnlyMountStopSignalAndCDI(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	ctx := harness.Ctx(t)

	// A host directory with a submount: a plain read-only bind leaves the
	// submount writable, recursive_read_only does not.
	host := t.TempDir()
	sub := filepath.Join(host, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })
	for _, rro := range []bool{false, true} {
		cfg := e.config(fmt.Sprintf("rro-%v", rro), "sh", "-c", "touch /data/sub/x && echo wrote || echo refused")
		cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: host, Readonly: true, RecursiveReadOnly: rro}}
		_, out := e.runToExit(t, cfg)
		want, other := "wrote", "refused"
		if rro {
			want, other = other, want
		}
		if !strings.Contains(out, want) || strings.Contains(out, other) {
			t.Errorf("recursive_read_only=%v: %q, want %q", rro, out, want)
		}
	}
	// mount_options reach the bind mount.
	if err := os.WriteFile(filepath.Join(host, "run.sh"), []byte("#!/bin/sh\necho ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, opts := range [][]string{nil, {"noexec"}} {
		cfg := e.config(fmt.Sprintf("opts-%d", len(opts)), "sh", "-c", "/data/run.sh || echo denied")
		cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: host, MountOptions: opts}}
		_, out := e.runToExit(t, cfg)
		want := map[int]string{0: "ran", 1: "denied"}[len(opts)]
		if !strings.Contains(out, want) {
			t.Errorf("mount_options %v: %q, want %q", opts, out, want)
		}
	}
	bad := e.config("rro-rw", "true")
	bad.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: host, RecursiveReadOnly: true}}
	if _, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: bad, SandboxConfig: e.podCfg}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "recursive_read_only") {
		t.Errorf("recursive_read_only without readonly: %v", err)
	}

	// stop_signal replaces the image's stop signal and is reported.
	cfg := e.config("stopsig", "sh", "-c", `trap "echo got-usr1; exit 3" USR1; echo ready; while true; do sleep 0.1; done`)
	cfg.StopSignal = runtimeapi.Signal_SIGNAL_SIGUSR1
	id := e.run(t, cfg)
	waitLog(t, e, id, "ready")
	if st := e.status(t, id); st.StopSignal != runtimeapi.Signal_SIGNAL_SIGUSR1 {
		t.Errorf("status stop_signal %v", st.StopSignal)
	}
	if _, err := e.d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 10}); err != nil {
		t.Fatal(err)
	}
	if st := e.status(t, id); st.ExitCode != 3 {
		t.Errorf("stopped with exit code %d, want 3 from the USR1 trap; output %q", st.ExitCode, e.output(t, id))
	}
	if plain := e.status(t, e.run(t, e.config("plain", "sleep", "100"))); plain.StopSignal != runtimeapi.Signal_SIGNAL_SIGTERM {
		t.Errorf("default stop_signal %v, want SIGTERM", plain.StopSignal)
	}

	// A CDI device no spec describes is refused, not ignored.
	cdi := e.config("cdi", "true")
	cdi.CDIDevices = []*runtimeapi.CDIDevice{{Name: "vendor.example/gpu=0"}}
	if _, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: cdi, SandboxConfig: e.podCfg}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "vendor.example/gpu=0") {
		t.Errorf("CDI devices: %v", err)
	}
	if _, err := e.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
}
