// Package bench holds floe's benchmarks. They drive real daemons and real
// CNI plugins and report ratios against a floor measured in the same run,
// because absolute times drift on a shared machine.
//
//	sudo go test ./bench -run '^$' -bench . -benchtime 30x
package bench

import (
	"context"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/harness"
)

// BenchmarkRunPodSandboxVsFloor times RunPodSandbox (pinned namespaces,
// pod files, shm, CNI ADD, database writes) against the floor of the same
// network work without floe: `ip netns add` plus a libcni ADD of the same
// conflist. Floor and floe iterations alternate so both see the same load.
func BenchmarkRunPodSandboxVsFloor(b *testing.B) {
	harness.RequireRoot(b)
	d := harness.StartDaemon(b, harness.Options{})
	confPath := filepath.Join(d.CNIDir, "10-floetest.conflist")
	list, err := libcni.ConfListFromFile(confPath)
	if err != nil {
		b.Fatal(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{"/usr/lib/cni"}, b.TempDir(), nil)
	ctx := context.Background()
	var floe, floor []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Floor.
		name := "floebench-" + harness.Short()
		rt := floorRuntimeConf(name, name)
		start := time.Now()
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			b.Fatalf("ip netns add: %v %s", err, out)
		}
		if _, err := cni.AddNetworkList(ctx, list, rt); err != nil {
			b.Fatalf("floor ADD: %v", err)
		}
		floor = append(floor, time.Since(start))
		b.StopTimer()
		cni.DelNetworkList(ctx, list, rt)
		exec.Command("ip", "netns", "del", name).Run()
		b.StartTimer()

		// floe.
		// As the kubelet sends it for a pod without shareProcessNamespace:
		// its own PID namespace per container, so no pod init.
		cfg := &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: "bench", Namespace: "bench", Uid: harness.Short()},
			Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
			}},
		}
		start = time.Now()
		resp, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
		if err != nil {
			b.Fatalf("RunPodSandbox: %v", err)
		}
		floe = append(floe, time.Since(start))
		b.StopTimer()
		if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	report(b, "floe", floe)
	report(b, "floor", floor)
	b.ReportMetric(float64(median(floe))/float64(median(floor)), "ratio-median")
	b.ReportMetric(float64(pct(floe, 90))/float64(pct(floor, 90)), "ratio-p90")
}

func report(b *testing.B, name string, ds []time.Duration) {
	b.ReportMetric(float64(median(ds))/1e6, name+"-median-ms")
	b.ReportMetric(float64(pct(ds, 90))/1e6, name+"-p90-ms")
}

func median(ds []time.Duration) time.Duration { return pct(ds, 50) }

func pct(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}
