package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/harness"
)

// makePodCgroup creates the pod-level cgroup the kubelet would create
// under its CgroupParent, in every v1 hierarchy floe reads, and removes it
// at the end (after the test's processes are gone).
func makePodCgroup(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		t.Skip("this test drives cgroup v1 hierarchies")
	}
	parent := "/floetest-" + harness.Short()
	path := parent + "/pod-stats"
	for _, c := range []string{"cpuacct", "cpu", "memory", "pids"} {
		dir := filepath.Join("/sys/fs/cgroup", c, path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			os.Remove(dir)
			os.Remove(filepath.Dir(dir))
		})
	}
	return path
}

func joinCgroup(t *testing.T, path string, pid int) {
	t.Helper()
	for _, c := range []string{"cpuacct", "cpu", "memory", "pids"} {
		procs := filepath.Join("/sys/fs/cgroup", c, path, "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatalf("join %s: %v", procs, err)
		}
	}
}

func TestPodSandboxStatsMoveWithLoad(t *testing.T) {
	harness.CheckLeaks(t)
	cgroup := makePodCgroup(t)
	d := harness.StartDaemon(t, harness.Options{})
	ctx := harness.Ctx(t)
	cfg := podConfig("stats")
	cfg.Linux.CgroupParent = cgroup
	resp, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.PodSandboxId
	st, info := status2(t, d, id)

	// A process of the pod: in its netns and its cgroup, allocating ~8 MB
	// (charged to the cgroup only once it has joined, hence the wait on
	// stdin) and then burning CPU.
	burner := exec.Command("ip", "netns", "exec", info.NetnsName, "busybox", "sh", "-c",
		"read go; x=$(head -c 8000000 /dev/zero | tr '\\0' a); while :; do :; done")
	stdin, err := burner.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := burner.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { burner.Process.Kill(); burner.Wait() }()
	joinCgroup(t, cgroup, burner.Process.Pid)
	stdin.Write([]byte("go\n"))
	time.Sleep(300 * time.Millisecond)

	get := func() *runtimeapi.PodSandboxStats {
		r, err := d.Runtime.PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: id})
		if err != nil {
			t.Fatal(err)
		}
		return r.Stats
	}
	first := get()
	time.Sleep(500 * time.Millisecond)
	harness.MustRun(t, "ping", "-c", "3", "-i", "0.2", "-W", "2", st.Network.Ip)
	second := get()
	l1, l2 := first.Linux, second.Linux
	if l1.Cpu == nil || l2.Cpu == nil || l2.Cpu.UsageCoreNanoSeconds.Value <= l1.Cpu.UsageCoreNanoSeconds.Value {
		t.Fatalf("cpu usage did not grow: %v -> %v", l1.Cpu, l2.Cpu)
	}
	if l2.Cpu.UsageNanoCores == nil || l2.Cpu.UsageNanoCores.Value < 200_000_000 {
		t.Errorf("a busy loop should use > 0.2 cores, got %v", l2.Cpu.UsageNanoCores)
	}
	if l2.Memory == nil || l2.Memory.UsageBytes.Value < 4_000_000 || l2.Memory.WorkingSetBytes.Value < 4_000_000 || l2.Memory.RssBytes.Value < 4_000_000 {
		t.Errorf("memory = %v", l2.Memory)
	}
	if l2.Process == nil || l2.Process.ProcessCount.Value < 1 {
		t.Errorf("process count = %v", l2.Process)
	}
	if l1.Network == nil || l2.Network == nil || l2.Network.DefaultInterface == nil || l2.Network.DefaultInterface.Name != "eth0" {
		t.Fatalf("network = %v", l2.Network)
	}
	if l2.Network.DefaultInterface.RxBytes.Value <= l1.Network.DefaultInterface.RxBytes.Value ||
		l2.Network.DefaultInterface.TxBytes.Value <= l1.Network.DefaultInterface.TxBytes.Value {
		t.Errorf("pings did not move eth0 counters: %v -> %v", l1.Network.DefaultInterface, l2.Network.DefaultInterface)
	}
	list, err := d.Runtime.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{Filter: &runtimeapi.PodSandboxStatsFilter{LabelSelector: map[string]string{"app": "stats"}}})
	if err != nil || len(list.Stats) != 1 || list.Stats[0].Attributes.Id != id {
		t.Errorf("ListPodSandboxStats = %v, %v", list, err)
	}
	stream, err := d.Runtime.StreamPodSandboxStats(ctx, &runtimeapi.StreamPodSandboxStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || len(r.PodSandboxStats) != 1 {
		t.Errorf("StreamPodSandboxStats = %v, %v", r, err)
	}
	burner.Process.Kill()
	burner.Wait()
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
}
