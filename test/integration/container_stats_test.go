package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/harness"
)

func TestContainerStatsMoveWithLoad(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	ctx := harness.Ctx(t)
	idle := e.run(t, e.config("idle", "sleep", "1000"))
	// 20 MB written to the writable layer, ~30 MB held by the shell, then
	// a busy loop.
	busy := e.run(t, e.config("busy", "sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M count=20 || exit 1; x=$(yes | head -c 30000000); echo ready; while :; do :; done"))
	waitForFile(t, filepath.Join(e.logDir, "busy.log"), "ready", 30*time.Second)

	read := func(id string) *runtimeapi.ContainerStats {
		t.Helper()
		resp, err := e.d.Runtime.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: id})
		if err != nil {
			t.Fatalf("ContainerStats: %v", err)
		}
		return resp.Stats
	}
	read(busy)
	read(idle) // first samples: nanocores need two
	time.Sleep(time.Second)
	b, i := read(busy), read(idle)
	if b.Attributes.GetId() != busy || b.Attributes.Metadata.GetName() != "busy" {
		t.Errorf("attributes: %v", b.Attributes)
	}
	if b.Cpu.GetUsageNanoCores().GetValue() < 300_000_000 || b.Cpu.GetUsageCoreNanoSeconds().GetValue() == 0 {
		t.Errorf("busy container cpu: %v", b.Cpu)
	}
	if i.Cpu.GetUsageNanoCores().GetValue() > 50_000_000 {
		t.Errorf("idle container cpu: %v", i.Cpu)
	}
	if ws := b.Memory.GetWorkingSetBytes().GetValue(); ws < 25<<20 {
		t.Errorf("busy container working set %d, want >= 25 MiB (%v)", ws, b.Memory)
	}
	if ws := i.Memory.GetWorkingSetBytes().GetValue(); ws == 0 || ws > 10<<20 {
		t.Errorf("idle container working set %d (%v)", ws, i.Memory)
	}
	if b.Memory.GetUsageBytes().GetValue() < b.Memory.GetWorkingSetBytes().GetValue() || b.Memory.GetPageFaults().GetValue() == 0 || b.Memory.GetRssBytes().GetValue() == 0 {
		t.Errorf("busy container memory: %v", b.Memory)
	}
	if used := b.WritableLayer.GetUsedBytes().GetValue(); used < 20<<20 || b.WritableLayer.GetInodesUsed().GetValue() == 0 || b.WritableLayer.GetFsId().GetMountpoint() == "" {
		t.Errorf("busy container writable layer: %v", b.WritableLayer)
	}
	if used := i.WritableLayer.GetUsedBytes().GetValue(); used > 1<<20 {
		t.Errorf("idle container writable layer: %v", i.WritableLayer)
	}

	list, err := e.d.Runtime.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{Filter: &runtimeapi.ContainerStatsFilter{PodSandboxId: e.podID, LabelSelector: map[string]string{"ctr": "busy"}}})
	if err != nil || len(list.Stats) != 1 || list.Stats[0].Attributes.Id != busy {
		t.Errorf("ListContainerStats by label: %v, %v", list, err)
	}
	stream, err := e.d.Runtime.StreamContainerStats(ctx, &runtimeapi.StreamContainerStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		resp, err := stream.Recv()
		if err != nil {
			break
		}
		n += len(resp.ContainerStats)
	}
	if n != 2 {
		t.Errorf("StreamContainerStats gave %d containers, want 2", n)
	}
	pod, err := e.d.Runtime.PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: e.podID})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(pod.Stats.GetLinux().GetContainers()); got != 2 {
		t.Errorf("PodSandboxStats has %d containers, want 2", got)
	}

	// The cAdvisor-named metrics the kubelet serves on /metrics/cadvisor.
	desc, err := e.d.Runtime.ListMetricDescriptors(ctx, &runtimeapi.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	described := map[string]bool{}
	for _, d := range desc.Descriptors {
		described[d.Name] = true
	}
	pm, err := e.d.Runtime.ListPodSandboxMetrics(ctx, &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]uint64{} // name/container or name/interface
	for _, p := range pm.PodMetrics {
		if p.PodSandboxId != e.podID {
			continue
		}
		for _, m := range p.Metrics {
			if !described[m.Name] {
				t.Errorf("pod metric %s is not described", m.Name)
			}
			values[m.Name+"/"+m.LabelValues[len(m.LabelValues)-1]] = m.Value.GetValue()
		}
		for _, cm := range p.ContainerMetrics {
			for _, m := range cm.Metrics {
				if !described[m.Name] {
					t.Errorf("container metric %s is not described", m.Name)
				}
				values[m.Name+"/"+cm.ContainerId] = m.Value.GetValue()
			}
		}
	}
	// CPU seconds are whole seconds: only their presence is certain here.
	if _, ok := values["container_cpu_usage_seconds_total/"+busy]; !ok || values["container_memory_working_set_bytes/"+busy] < 25<<20 ||
		values["container_fs_usage_bytes/"+busy] < 20<<20 || values["container_last_seen/"+idle] == 0 {
		t.Errorf("container metrics: %v", values)
	}
	if _, ok := values["container_network_receive_bytes_total/eth0"]; !ok {
		t.Errorf("no pod network metrics for eth0: %v", values)
	}
}

// waitForFile waits until the file at path contains s.
func waitForFile(t *testing.T, path, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not contain %q after %v: %q", path, s, timeout, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
