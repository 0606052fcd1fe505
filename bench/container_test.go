package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/ocispec"
	"github.com/floe-cri/floe/test/fixtures"
	"github.com/floe-cri/floe/test/harness"
	"github.com/floe-cri/floe/test/ocitest"
)

// containerBench is a daemon with the test busybox pulled, and what the
// floor needs to do the same work without floe.
type containerBench struct {
	reg   *fixtures.Registry
	d     *harness.Daemon
	image string
	cni   *libcni.CNIConfig
	list  *libcni.NetworkConfigList
}

func newContainerBench(b testing.TB) *containerBench {
	b.Helper()
	harness.RequireRoot(b)
	reg := fixtures.StartRegistry(b, fixtures.RegistryOptions{})
	reg.PushBusybox(b, "busybox:bench")
	d := harness.StartDaemon(b, harness.Options{RegistriesConf: reg.RegistriesConf(false)})
	ref := reg.Ref("busybox:bench")
	if _, err := d.Images.PullImage(context.Background(), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		b.Fatalf("pull: %v", err)
	}
	list, err := libcni.ConfListFromFile(filepath.Join(d.CNIDir, "10-floetest.conflist"))
	if err != nil {
		b.Fatal(err)
	}
	return &containerBench{reg: reg, d: d, image: ref, list: list,
		cni: libcni.NewCNIConfigWithCacheDir([]string{"/usr/lib/cni"}, b.TempDir(), nil)}
}

// floorBundle prepares (untimed) a runc bundle of the same busybox sleep
// in the netns the floor will create.
func floorBundle(b *testing.B) (id, bundle, netns string) {
	id = "floebench-" + harness.Short()
	netns = id
	bundle = ocitest.Bundle(b, id, func(c *ocispec.Container) {
		c.Command = []string{"sleep", "1000"}
		c.Namespaces = ocispec.Namespaces{NetPath: "/run/netns/" + netns}
	})
	return id, bundle, netns
}

// floorRuntimeConf is the CNI runtime config of a floor pod: the same
// interface name and arguments floe gives its pods, in the netns that
// `ip netns add NETNS` makes.
func floorRuntimeConf(id, netns string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: id, NetNS: "/run/netns/" + netns, IfName: "eth0", Args: [][2]string{{"IgnoreUnknown", "1"}}}
}

// floor is the work of a pod with one container without floe: a netns, a
// CNI ADD of the same conflist, and `runc run -d` of a prepared bundle. It
// returns the undo.
func (cb *containerBench) floor(b *testing.B, id, bundle, netns string) func() {
	ctx := context.Background()
	rt := floorRuntimeConf(id, netns)
	undo := func() {
		ocitest.ForceDelete(id)
		cb.cni.DelNetworkList(ctx, cb.list, rt)
		exec.Command("ip", "netns", "del", netns).Run()
	}
	// Errorf, not Fatal: floors also run on other goroutines.
	if out, err := exec.Command("ip", "netns", "add", netns).CombinedOutput(); err != nil {
		b.Errorf("ip netns add: %v %s", err, out)
		return undo
	}
	if _, err := cb.cni.AddNetworkList(ctx, cb.list, rt); err != nil {
		b.Errorf("floor ADD: %v", err)
		return undo
	}
	if err := runcRunDetached(ctx, id, bundle); err != nil {
		b.Errorf("%v", err)
	}
	return undo
}

// runcRunDetached is `runc run -d`. The container inherits runc's stdio,
// so its output goes to a file in the bundle: a pipe would stay open as
// long as the container runs and the wait for runc would never end.
func runcRunDetached(ctx context.Context, id, bundle string) error {
	out, err := os.Create(filepath.Join(bundle, "output"))
	if err != nil {
		return err
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "runc", "run", "-d", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(out.Name())
		return fmt.Errorf("runc run %s: %w: %s", id, err, msg)
	}
	return nil
}

// pod runs a pod with one busybox sleep through floe, as the kubelet does.
// It may run on other goroutines, so it reports failures with Errorf and
// returns "" (callers stop at the next check).
func (cb *containerBench) pod(b *testing.B, sharePID bool) string {
	return cb.podWith(b, sharePID, nil)
}

// podWith is pod with the pod's user namespace options (nil: the host's).
func (cb *containerBench) podWith(b *testing.B, sharePID bool, userns *runtimeapi.UserNamespace) string {
	ctx := context.Background()
	pid := runtimeapi.NamespaceMode_CONTAINER
	if sharePID {
		pid = runtimeapi.NamespaceMode_POD
	}
	ns := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Ipc: runtimeapi.NamespaceMode_POD, Pid: pid, UsernsOptions: userns}
	cfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "bench", Namespace: "bench", Uid: harness.Short()},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: ns}}}
	resp, err := cb.d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		b.Errorf("RunPodSandbox: %v", err)
		return ""
	}
	c, err := cb.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: resp.PodSandboxId, SandboxConfig: cfg,
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "sleep"}, Image: &runtimeapi.ImageSpec{Image: cb.image},
			Command: []string{"sleep", "1000"},
			Linux:   &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: ns}}}})
	if err != nil {
		b.Errorf("CreateContainer: %v", err)
		return resp.PodSandboxId
	}
	if _, err := cb.d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		b.Errorf("StartContainer: %v", err)
	}
	return resp.PodSandboxId
}

func (cb *containerBench) removePod(b *testing.B, id string) {
	if id == "" {
		return
	}
	if _, err := cb.d.Runtime.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		b.Errorf("RemovePodSandbox: %v", err)
	}
}

// BenchmarkPodAndContainerStartVsFloor times RunPodSandbox +
// CreateContainer + StartContainer of a busybox sleep against the floor of
// the same work without floe (netns, CNI ADD, `runc run -d`). Floor and
// floe iterations alternate so both see the same load.
//
//	go test ./bench -run '^$' -bench PodAndContainerStart -benchtime 20x
func BenchmarkPodAndContainerStartVsFloor(b *testing.B) {
	cb := newContainerBench(b)
	var floe, floor []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		id, bundle, netns := floorBundle(b)
		b.StartTimer()
		start := time.Now()
		undo := cb.floor(b, id, bundle, netns)
		floor = append(floor, time.Since(start))
		b.StopTimer()
		undo()
		b.StartTimer()

		start = time.Now()
		pod := cb.pod(b, false)
		floe = append(floe, time.Since(start))
		b.StopTimer()
		if b.Failed() {
			b.FailNow()
		}
		cb.removePod(b, pod)
		b.StartTimer()
	}
	b.StopTimer()
	report(b, "floe", floe)
	report(b, "floor", floor)
	b.ReportMetric(float64(median(floe))/float64(median(floor)), "ratio-median")
	b.ReportMetric(float64(pct(floe, 90))/float64(pct(floor, 90)), "ratio-p90")
}

// BenchmarkParallel20PodsVsFloor starts 20 pods with one container each
// at once and compares the wall time with 20 floors run at once.
//
//	go test ./bench -run '^$' -bench Parallel20Pods -benchtime 3x
func BenchmarkParallel20PodsVsFloor(b *testing.B) {
	const n = 20
	cb := newContainerBench(b)
	var floe, floor []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		type prepared struct{ id, bundle, netns string }
		preps := make([]prepared, n)
		for j := range preps {
			preps[j].id, preps[j].bundle, preps[j].netns = floorBundle(b)
		}
		b.StartTimer()
		undos := make([]func(), n)
		floor = append(floor, parallel(n, func(j int) { undos[j] = cb.floor(b, preps[j].id, preps[j].bundle, preps[j].netns) }))
		b.StopTimer()
		parallel(n, func(j int) { undos[j]() })
		if b.Failed() {
			b.FailNow()
		}
		b.StartTimer()

		pods := make([]string, n)
		floe = append(floe, parallel(n, func(j int) { pods[j] = cb.pod(b, false) }))
		b.StopTimer()
		parallel(n, func(j int) { cb.removePod(b, pods[j]) })
		if b.Failed() {
			b.FailNow()
		}
		b.StartTimer()
	}
	b.StopTimer()
	report(b, "floe-wall", floe)
	report(b, "floor-wall", floor)
	b.ReportMetric(float64(median(floe))/float64(median(floor)), "ratio-median")
}

// parallel runs f(0..n-1) at once and returns the wall time.
func parallel(n int, f func(int)) time.Duration {
	var wg sync.WaitGroup
	start := time.Now()
	for j := 0; j < n; j++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(j)
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkRSSWithRunningPods reports the resident memory of floe, of all
// conmon monitors and of the pod inits with 0, 10 and 50 running pods
// (one busybox sleep each; every other pod shares its PID namespace, so
// it has an init).
//
//	go test ./bench -run '^$' -bench RSSWithRunningPods -benchtime 1x
func BenchmarkRSSWithRunningPods(b *testing.B) {
	cb := newContainerBench(b)
	for i := 0; i < b.N; i++ {
		var pods []string
		for _, want := range []int{0, 10, 50} {
			b.StopTimer()
			for len(pods) < want {
				batch := min(5, want-len(pods))
				ids := make([]string, batch)
				parallel(batch, func(j int) { ids[j] = cb.pod(b, (len(pods)+j)%2 == 1) })
				pods = append(pods, ids...)
				if b.Failed() {
					b.FailNow()
				}
			}
			// Let the daemon's heap settle after the burst of creations.
			time.Sleep(2 * time.Second)
			floeKB, conmonKB, initKB, anonKB, nConmon, nInit := cb.rss(b)
			if nConmon != want {
				b.Errorf("%d pods but %d conmon monitors found", want, nConmon)
			}
			b.ReportMetric(float64(floeKB)/1024, fmt.Sprintf("floe-MB-%dpods", want))
			b.ReportMetric(float64(conmonKB)/1024, fmt.Sprintf("conmon-MB-%dpods", want))
			b.ReportMetric(float64(initKB)/1024, fmt.Sprintf("init-MB-%dpods(%d)", want, nInit))
			b.ReportMetric(float64(floeKB+conmonKB+initKB)/1024, fmt.Sprintf("total-MB-%dpods", want))
			// VmRSS counts the pages of a binary every copy shares (the
			// page cache) once per process; RssAnon is each one's own.
			b.ReportMetric(float64(anonKB)/1024, fmt.Sprintf("total-anon-MB-%dpods", want))
		}
		parallel(len(pods), func(j int) { cb.removePod(b, pods[j]) })
	}
}

// rss sums VmRSS (kB) of the daemon, the conmons of its containers and the
// pod inits they share PID namespaces with, and the RssAnon of all of them.
func (cb *containerBench) rss(b *testing.B) (floe, conmon, inits, anon, nConmon, nInit int) {
	floe, anon = procRSS(cb.d.PID())
	resp, err := cb.d.Runtime.ListContainers(context.Background(), &runtimeapi.ListContainersRequest{})
	if err != nil {
		b.Fatal(err)
	}
	podNS := map[string]bool{}
	for _, c := range resp.Containers {
		st, err := cb.d.Runtime.ContainerStatus(context.Background(), &runtimeapi.ContainerStatusRequest{ContainerId: c.Id, Verbose: true})
		if err != nil {
			b.Fatal(err)
		}
		var info struct {
			Pid       int `json:"pid"`
			ConmonPid int `json:"conmonPid"`
		}
		if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil {
			b.Fatal(err)
		}
		r, a := procRSS(info.ConmonPid)
		conmon, anon = conmon+r, anon+a
		nConmon++
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", info.Pid))
		podNS[ns] = true
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
		if strings.HasPrefix(string(cmd), "floe-pod-init") && podNS[ns] {
			r, a := procRSS(pid)
			inits, anon = inits+r, anon+a
			nInit++
		}
	}
	return floe, conmon, inits, anon, nConmon, nInit
}

// procRSS reads VmRSS and RssAnon (kB) from /proc/PID/status.
func procRSS(pid int) (rss, anon int) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	kb := func(v string) int {
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		return n
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rss = kb(v)
		}
		if v, ok := strings.CutPrefix(l, "RssAnon:"); ok {
			anon = kb(v)
		}
	}
	return rss, anon
}
