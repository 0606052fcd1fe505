package crimetrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/stats"
)

// critestNames is the metric set cri-tools' pkg/validate expects from
// ListMetricDescriptors (what the kubelet's cAdvisor provider shows with
// CRI-O).
var critestNames = []string{
	"container_blkio_device_usage_total", "container_cpu_cfs_periods_total", "container_cpu_cfs_throttled_periods_total",
	"container_cpu_cfs_throttled_seconds_total", "container_cpu_system_seconds_total", "container_cpu_usage_seconds_total",
	"container_cpu_user_seconds_total", "container_file_descriptors", "container_fs_inodes_free", "container_fs_inodes_total",
	"container_fs_limit_bytes", "container_fs_reads_bytes_total", "container_fs_reads_total", "container_fs_usage_bytes",
	"container_fs_writes_bytes_total", "container_fs_writes_total", "container_hugetlb_max_usage_bytes", "container_hugetlb_usage_bytes",
	"container_last_seen", "container_memory_cache", "container_memory_failcnt", "container_memory_failures_total",
	"container_memory_kernel_usage", "container_memory_mapped_file", "container_memory_max_usage_bytes", "container_memory_rss",
	"container_memory_swap", "container_memory_usage_bytes", "container_memory_working_set_bytes",
	"container_network_receive_bytes_total", "container_network_receive_errors_total", "container_network_receive_packets_dropped_total",
	"container_network_receive_packets_total", "container_network_transmit_bytes_total", "container_network_transmit_errors_total",
	"container_network_transmit_packets_dropped_total", "container_network_transmit_packets_total", "container_oom_events_total",
	"container_pressure_cpu_stalled_seconds_total", "container_pressure_cpu_waiting_seconds_total",
	"container_pressure_io_stalled_seconds_total", "container_pressure_io_waiting_seconds_total",
	"container_pressure_memory_stalled_seconds_total", "container_pressure_memory_waiting_seconds_total",
	"container_processes", "container_sockets", "container_spec_cpu_period", "container_spec_cpu_quota", "container_spec_cpu_shares",
	"container_spec_memory_limit_bytes", "container_spec_memory_reservation_limit_bytes", "container_spec_memory_swap_limit_bytes",
	"container_start_time_seconds", "container_threads", "container_threads_max", "container_ulimits_soft",
}

func TestDescriptors(t *testing.T) {
	byName := map[string]*runtimeapi.MetricDescriptor{}
	for _, d := range Descriptors() {
		if byName[d.Name] != nil {
			t.Errorf("%s described twice", d.Name)
		}
		byName[d.Name] = d
		if d.Help == "" || len(d.LabelKeys) < len(BaseLabels) {
			t.Errorf("%s: help %q, labels %v", d.Name, d.Help, d.LabelKeys)
		}
	}
	for _, n := range critestNames {
		if byName[n] == nil {
			t.Errorf("%s is not described", n)
		}
	}
	if len(byName) != len(critestNames) {
		t.Errorf("%d descriptors, want %d", len(byName), len(critestNames))
	}
}

func write(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// check indexes metrics by name and extra labels, and fails on a series
// whose labels do not match its descriptor (critest compares their
// counts) or that is not described at all.
func check(t *testing.T, ms []*runtimeapi.Metric) map[string]*runtimeapi.Metric {
	t.Helper()
	keys := map[string]int{}
	for _, d := range Descriptors() {
		keys[d.Name] = len(d.LabelKeys)
	}
	out := map[string]*runtimeapi.Metric{}
	for _, m := range ms {
		n, ok := keys[m.Name]
		if !ok {
			t.Errorf("%s is not described", m.Name)
			continue
		}
		if len(m.LabelValues) != n {
			t.Errorf("%s has %d label values, its descriptor %d keys", m.Name, len(m.LabelValues), n)
			continue
		}
		k := m.Name
		for _, l := range m.LabelValues[len(BaseLabels):] {
			k += "/" + l
		}
		out[k] = m
	}
	return out
}

func TestContainerV1(t *testing.T) {
	cg, proc, sys, layer := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	write(t, cg, map[string]string{
		"cpuacct/c/cpuacct.usage":                           "3500000000\n",
		"cpuacct/c/cpuacct.usage_user":                      "2000000000\n",
		"cpuacct/c/cpuacct.usage_sys":                       "1500000000\n",
		"cpu/c/cpu.stat":                                    "nr_periods 40\nnr_throttled 7\nthrottled_time 2500000000\n",
		"cpu/c/cpu.shares":                                  "1024\n",
		"cpu/c/cpu.cfs_period_us":                           "100000\n",
		"cpu/c/cpu.cfs_quota_us":                            "20000\n",
		"memory/c/memory.usage_in_bytes":                    "1048576\n",
		"memory/c/memory.max_usage_in_bytes":                "2097152\n",
		"memory/c/memory.stat":                              "total_rss 8192\ntotal_cache 4096\ntotal_inactive_file 48576\npgfault 5\ntotal_pgfault 6\n",
		"memory/c/memory.limit_in_bytes":                    "67108864\n",
		"memory/c/memory.memsw.limit_in_bytes":              "67108864\n",
		"memory/c/cgroup.procs":                             "10\n",
		"pids/c/pids.current":                               "4\n",
		"pids/c/pids.max":                                   "max\n",
		"blkio/c/blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 8192\nTotal 12288\n",
		"blkio/c/blkio.throttle.io_serviced_recursive":      "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
	})
	write(t, sys, map[string]string{"dev/block/8:0/uevent": "DEVNAME=vda\n"})
	write(t, proc, map[string]string{"10/limits": "Max open files            1024                 4096                 files\n"})
	os.MkdirAll(filepath.Join(proc, "10", "fd"), 0o755)
	os.Symlink("socket:[1]", filepath.Join(proc, "10", "fd", "3"))
	os.Symlink("/dev/null", filepath.Join(proc, "10", "fd", "0"))

	started := time.Unix(1700000000, 5)
	c := &Collector{Cgroups: stats.NewReader(cg), ProcRoot: proc, SysRoot: sys}
	ms, errs := c.Container(Container{
		Owner:      Owner{ID: "cid", Image: "busybox", Namespace: "ns", Pod: "p", Container: "ctr"},
		CgroupPath: "/c", Pid: 10, StartedAt: started, Layer: &Layer{UsedBytes: 123, Mountpoint: layer},
	})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	got := check(t, ms)
	want := map[string]uint64{
		"container_cpu_usage_seconds_total/total":               3,
		"container_cpu_user_seconds_total":                      2,
		"container_cpu_system_seconds_total":                    1,
		"container_cpu_cfs_periods_total":                       40,
		"container_cpu_cfs_throttled_periods_total":             7,
		"container_cpu_cfs_throttled_seconds_total":             2,
		"container_memory_usage_bytes":                          1048576,
		"container_memory_max_usage_bytes":                      2097152,
		"container_memory_working_set_bytes":                    1000000,
		"container_memory_rss":                                  8192,
		"container_memory_cache":                                4096,
		"container_memory_failures_total/pgfault/container":     5,
		"container_memory_failures_total/pgfault/hierarchy":     6,
		"container_fs_reads_bytes_total//dev/vda":               4096,
		"container_fs_writes_total//dev/vda":                    2,
		"container_blkio_device_usage_total//dev/vda/8/0/Write": 8192,
		"container_processes":                                   1,
		"container_threads":                                     4,
		"container_threads_max":                                 0,
		"container_file_descriptors":                            2,
		"container_sockets":                                     1,
		"container_ulimits_soft/max_open_files":                 1024,
		"container_spec_cpu_shares":                             1024,
		"container_spec_cpu_period":                             100000,
		"container_spec_cpu_quota":                              20000,
		"container_spec_memory_limit_bytes":                     64 << 20,
		"container_spec_memory_swap_limit_bytes":                64 << 20,
		"container_start_time_seconds":                          uint64(started.Unix()),
	}
	for k, v := range want {
		if m := got[k]; m == nil || m.Value.GetValue() != v {
			t.Errorf("%s = %v, want %d", k, m, v)
		}
	}
	var fsKey string
	for k := range got {
		if strings.HasPrefix(k, "container_fs_usage_bytes/") {
			fsKey = k
		}
	}
	if m := got[fsKey]; m == nil || m.Value.GetValue() != 123 {
		t.Errorf("fs usage = %v", m)
	}
	m := got["container_memory_rss"]
	if m.LabelValues[0] != "cid" || m.LabelValues[1] != "busybox" || m.LabelValues[2] != "ns" || m.LabelValues[3] != "p" || m.LabelValues[4] != "ctr" ||
		m.MetricType != runtimeapi.MetricType_GAUGE || got["container_cpu_user_seconds_total"].MetricType != runtimeapi.MetricType_COUNTER {
		t.Errorf("rss metric = %v", m)
	}
	// v1 without PSI, hugetlb and swap accounting: those are left out,
	// not zero.
	if got["container_memory_swap"] != nil {
		t.Error("swap reported without swap accounting")
	}
	for k := range got {
		if strings.HasPrefix(k, "container_pressure") || strings.HasPrefix(k, "container_hugetlb") {
			t.Errorf("%s reported on a host without it", k)
		}
	}
}

func TestContainerGoneAndNotRunning(t *testing.T) {
	c := &Collector{Cgroups: stats.NewReader(t.TempDir()), ProcRoot: t.TempDir(), SysRoot: t.TempDir()}
	ms, errs := c.Container(Container{Owner: Owner{ID: "x"}, CgroupPath: "/gone"})
	if len(errs) != 0 {
		t.Errorf("a removed cgroup is not an error: %v", errs)
	}
	if got := check(t, ms); len(got) != 1 || got["container_last_seen"] == nil {
		t.Errorf("metrics of a gone container: %v", got)
	}
}

func TestPod(t *testing.T) {
	now := time.Now()
	ms := Pod(Owner{ID: "pod", Namespace: "ns", Pod: "p", Container: "POD"}, &stats.NetworkSample{Time: now, Interfaces: []stats.Interface{
		{Name: "eth0", RxBytes: 1, RxPackets: 2, RxErrors: 3, RxDropped: 4, TxBytes: 5, TxPackets: 6, TxErrors: 7, TxDropped: 8},
	}})
	got := check(t, ms)
	want := map[string]uint64{
		"container_network_receive_bytes_total/eth0": 1, "container_network_receive_packets_total/eth0": 2,
		"container_network_receive_errors_total/eth0": 3, "container_network_receive_packets_dropped_total/eth0": 4,
		"container_network_transmit_bytes_total/eth0": 5, "container_network_transmit_packets_total/eth0": 6,
		"container_network_transmit_errors_total/eth0": 7, "container_network_transmit_packets_dropped_total/eth0": 8,
	}
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d", len(got), len(want))
	}
	for k, v := range want {
		if m := got[k]; m == nil || m.Value.GetValue() != v || m.Timestamp != now.UnixNano() || m.LabelValues[4] != "POD" {
			t.Errorf("%s = %v, want %d", k, m, v)
		}
	}
}

func TestContainerUnlimitedOpenFiles(t *testing.T) {
	proc := t.TempDir()
	write(t, proc, map[string]string{"7/limits": "Max open files            unlimited            unlimited            files\n"})
	c := &Collector{ProcRoot: proc, SysRoot: t.TempDir()}
	ms, errs := c.Container(Container{Owner: Owner{ID: "x"}, Pid: 7})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	// RLIM_INFINITY, -1 when read as signed.
	if m := check(t, ms)["container_ulimits_soft/max_open_files"]; m == nil || int64(m.Value.GetValue()) != -1 {
		t.Errorf("unlimited open files = %v", m)
	}
	if _, errs := c.Container(Container{Owner: Owner{ID: "x"}, Pid: 8}); len(errs) != 1 {
		t.Errorf("a process without limits: errs %v", errs)
	}
}
