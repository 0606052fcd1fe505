package integration

import (
	"os"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/harness"
)

// TestPodSandboxMetricsValues runs a pod and a limited container (the
// resources critest sets) that holds a socket, a second process and a
// throttled busy loop, and checks the cAdvisor series against what was
// set and done.
func TestPodSandboxMetricsValues(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	ctx := harness.Ctx(t)
	before := time.Now().Add(-time.Second)

	cfg := e.config("limited", "sh", "-c", "nc -l -p 7777 & sleep 1000")
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{
		CpuPeriod: 100000, CpuQuota: 20000, CpuShares: 512,
		MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 64 << 20,
	}
	id := e.run(t, cfg)

	// A busy loop under a 20% quota is throttled; connecting to the
	// pod's gateway address sends at least an ARP request or a SYN.
	if out, code := e.exec(t, id, "sh", "-c", "timeout 1 sh -c 'while :; do :; done'; dd if=/dev/zero of=/tmp/f bs=64k count=16 2>/dev/null; sync; true"); code != 0 {
		t.Fatalf("busy loop: %d %s", code, out)
	}
	st, err := e.d.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: e.podID})
	if err != nil {
		t.Fatal(err)
	}
	ip := st.Status.GetNetwork().GetIp()
	if i := strings.LastIndex(ip, "."); i > 0 {
		e.exec(t, id, "sh", "-c", "nc -w 1 "+ip[:i]+".1 9 </dev/null; true")
	} else {
		t.Fatalf("pod ip %q", ip)
	}
	// Both processes are up once the listener's socket is there.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if out, _ := e.exec(t, id, "sh", "-c", "ls -l /proc/*/fd 2>/dev/null | grep -c socket"); out != "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nc never listened")
		}
		time.Sleep(100 * time.Millisecond)
	}

	desc, err := e.d.Runtime.ListMetricDescriptors(ctx, &runtimeapi.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]int{}
	for _, d := range desc.Descriptors {
		if d.Help == "" {
			t.Errorf("%s has no help", d.Name)
		}
		keys[d.Name] = len(d.LabelKeys)
	}
	resp, err := e.d.Runtime.ListPodSandboxMetrics(ctx, &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var pm *runtimeapi.PodSandboxMetrics
	for _, p := range resp.PodMetrics {
		if p.PodSandboxId == e.podID {
			pm = p
		}
	}
	if pm == nil || len(pm.ContainerMetrics) != 1 || pm.ContainerMetrics[0].ContainerId != id {
		t.Fatalf("pod metrics: %v", pm)
	}

	// name -> value of the series (by its first extra label for those
	// that have one: cpu "total", interface "eth0", ...).
	pod, ctr := map[string]uint64{}, map[string]uint64{}
	index := func(into map[string]uint64, ms []*runtimeapi.Metric, container string) {
		for _, m := range ms {
			n, ok := keys[m.Name]
			if !ok {
				t.Errorf("%s is not described", m.Name)
				continue
			}
			if len(m.LabelValues) != n {
				t.Errorf("%s: %d label values for %d keys: %v", m.Name, len(m.LabelValues), n, m.LabelValues)
				continue
			}
			if m.LabelValues[2] != e.podCfg.Metadata.Namespace || m.LabelValues[3] != e.podCfg.Metadata.Name || m.LabelValues[4] != container {
				t.Errorf("%s labels %v", m.Name, m.LabelValues)
			}
			k := m.Name
			if n > 5 {
				k += "/" + m.LabelValues[5]
			}
			if m.Name == "container_memory_failures_total" {
				k += "/" + m.LabelValues[6]
			}
			into[k] = m.Value.GetValue()
		}
	}
	index(pod, pm.Metrics, "POD")
	index(ctr, pm.ContainerMetrics[0].Metrics, "limited")
	t.Logf("container series: %v", ctr)
	t.Logf("pod series: %v", pod)

	// Every series critest requires values for on any host.
	for _, n := range []string{
		"container_cpu_cfs_periods_total", "container_cpu_cfs_throttled_periods_total", "container_cpu_cfs_throttled_seconds_total",
		"container_cpu_system_seconds_total", "container_cpu_usage_seconds_total/total", "container_cpu_user_seconds_total",
		"container_file_descriptors", "container_last_seen", "container_memory_cache", "container_memory_failcnt",
		"container_memory_failures_total/pgfault/container", "container_memory_failures_total/pgmajfault/hierarchy",
		"container_memory_kernel_usage", "container_memory_mapped_file", "container_memory_max_usage_bytes", "container_memory_rss",
		"container_memory_swap", "container_memory_usage_bytes", "container_memory_working_set_bytes", "container_oom_events_total",
		"container_processes", "container_sockets", "container_spec_cpu_period", "container_spec_cpu_quota", "container_spec_cpu_shares",
		"container_spec_memory_limit_bytes", "container_spec_memory_reservation_limit_bytes", "container_spec_memory_swap_limit_bytes",
		"container_start_time_seconds", "container_threads", "container_threads_max", "container_ulimits_soft/max_open_files",
	} {
		if _, ok := ctr[n]; !ok {
			t.Errorf("no %s", n)
		}
	}
	for _, n := range []string{"bytes", "packets", "packets_dropped", "errors"} {
		for _, dir := range []string{"receive", "transmit"} {
			if _, ok := pod["container_network_"+dir+"_"+n+"_total/eth0"]; !ok {
				t.Errorf("no pod series container_network_%s_%s_total for eth0", dir, n)
			}
		}
	}
	if pod["container_network_transmit_packets_total/eth0"] == 0 || pod["container_network_transmit_bytes_total/eth0"] == 0 {
		t.Errorf("nothing transmitted on eth0: %v", pod)
	}

	// Values from what was set.
	want := map[string]uint64{
		"container_spec_cpu_period": 100000, "container_spec_cpu_quota": 20000, "container_spec_cpu_shares": 512,
		"container_spec_memory_limit_bytes": 64 << 20, "container_processes": 2,
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"); err == nil {
		want["container_spec_memory_swap_limit_bytes"] = 64 << 20 // v1 with swap accounting: memory+swap
	}
	for k, v := range want {
		if ctr[k] != v {
			t.Errorf("%s = %d, want %d", k, ctr[k], v)
		}
	}
	// Values from what was done.
	if ctr["container_cpu_cfs_periods_total"] == 0 || ctr["container_cpu_cfs_throttled_periods_total"] == 0 {
		t.Errorf("busy loop under quota not seen: periods %d, throttled %d", ctr["container_cpu_cfs_periods_total"], ctr["container_cpu_cfs_throttled_periods_total"])
	}
	if u, ws := ctr["container_memory_usage_bytes"], ctr["container_memory_working_set_bytes"]; u == 0 || ws > u || ctr["container_memory_rss"] == 0 {
		t.Errorf("memory usage %d, working set %d, rss %d", u, ws, ctr["container_memory_rss"])
	}
	if ctr["container_memory_max_usage_bytes"] < ctr["container_memory_usage_bytes"] || ctr["container_memory_max_usage_bytes"] > 64<<20 {
		t.Errorf("max usage %d", ctr["container_memory_max_usage_bytes"])
	}
	if ctr["container_memory_failures_total/pgfault/container"] == 0 {
		t.Error("no page faults")
	}
	if th := ctr["container_threads"]; th < ctr["container_processes"] {
		t.Errorf("threads %d < processes %d", th, ctr["container_processes"])
	}
	if ctr["container_file_descriptors"] < 4 || ctr["container_sockets"] < 1 {
		t.Errorf("fds %d, sockets %d", ctr["container_file_descriptors"], ctr["container_sockets"])
	}
	if v := ctr["container_ulimits_soft/max_open_files"]; v == 0 {
		t.Error("open files soft limit 0")
	}
	now := uint64(time.Now().Unix())
	if s := ctr["container_start_time_seconds"]; s < uint64(before.Unix()) || s > now {
		t.Errorf("start time %d, test began %d", s, before.Unix())
	}
	if ls := ctr["container_last_seen"]; ls+5 < now || ls > now {
		t.Errorf("last seen %d, now %d", ls, now)
	}
	var fsDev string
	for k := range ctr {
		if dev, ok := strings.CutPrefix(k, "container_fs_limit_bytes/"); ok {
			fsDev = dev
		}
	}
	if fsDev == "" || ctr["container_fs_limit_bytes/"+fsDev] == 0 || ctr["container_fs_inodes_free/"+fsDev] == 0 ||
		ctr["container_fs_inodes_free/"+fsDev] > ctr["container_fs_inodes_total/"+fsDev] || ctr["container_fs_usage_bytes/"+fsDev] < 1<<20 {
		t.Errorf("filesystem series on %q: limit %d, inodes %d/%d, usage %d", fsDev, ctr["container_fs_limit_bytes/"+fsDev],
			ctr["container_fs_inodes_free/"+fsDev], ctr["container_fs_inodes_total/"+fsDev], ctr["container_fs_usage_bytes/"+fsDev])
	}
}
