package stats

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// v1Fixture is a container cgroup on a v1 hybrid host as the kernel shows
// it (values from a real runc container, trimmed).
var v1Fixture = map[string]string{
	"cpuacct/c/cpuacct.usage":            "3500000000\n",
	"cpuacct/c/cpuacct.usage_user":       "2000000000\n",
	"cpuacct/c/cpuacct.usage_sys":        "1500000000\n",
	"cpuacct/c/cpuacct.stat":             "user 999\nsystem 999\n",
	"cpu/c/cpu.stat":                     "nr_periods 40\nnr_throttled 7\nthrottled_time 2500000000\nnr_bursts 0\nburst_time 0\n",
	"cpu/c/cpu.shares":                   "1024\n",
	"cpu/c/cpu.cfs_period_us":            "100000\n",
	"cpu/c/cpu.cfs_quota_us":             "20000\n",
	"memory/c/memory.usage_in_bytes":     "1048576\n",
	"memory/c/memory.max_usage_in_bytes": "2097152\n",
	"memory/c/memory.stat": "cache 1000\nrss 2000\nmapped_file 300\npgfault 50\npgmajfault 1\n" +
		"total_cache 4096\ntotal_rss 8192\ntotal_mapped_file 512\ntotal_swap 16384\ntotal_inactive_file 48576\ntotal_pgfault 70\ntotal_pgmajfault 3\n",
	"memory/c/memory.kmem.usage_in_bytes":  "65536\n",
	"memory/c/memory.failcnt":              "4\n",
	"memory/c/memory.oom_control":          "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
	"memory/c/memory.limit_in_bytes":       "67108864\n",
	"memory/c/memory.soft_limit_in_bytes":  "9223372036854771712\n",
	"memory/c/memory.memsw.limit_in_bytes": "67108864\n",
	"memory/c/cgroup.procs":                "100\n101\n",
	"memory/c/tasks":                       "100\n101\n102\n",
	"pids/c/pids.current":                  "3\n",
	"pids/c/pids.max":                      "max\n",
	"blkio/c/blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n8:0 Total 12288\n" +
		"253:1 Read 1\n253:1 Write 2\nTotal 12291\n",
	"blkio/c/blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\n253:1 Read 5\n253:1 Write 6\nTotal 14\n",
	"hugetlb/c/hugetlb.2MB.usage_in_bytes":         "2097152\n",
	"hugetlb/c/hugetlb.2MB.max_usage_in_bytes":     "4194304\n",
	"hugetlb/c/hugetlb.2MB.limit_in_bytes":         "9223372036854771712\n",
	"unified/c/cpu.pressure":                       "some avg10=0.00 avg60=0.00 avg300=0.00 total=3000000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\n",
	"unified/c/io.pressure":                        "some avg10=0.00 avg60=0.00 avg300=0.00 total=5000000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=4000000\n",
	"unified/c/memory.pressure":                    "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
}

func TestReadDetailV1(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, v1Fixture)
	d, err := NewReader(root).ReadDetail("/c")
	if err != nil {
		t.Fatal(err)
	}
	wantCPU := CPUDetail{Usage: 35e8, User: 2e9, System: 15e8, Periods: 40, ThrottledPeriods: 7, ThrottledNanos: 25e8}
	if d.CPU != wantCPU {
		t.Errorf("cpu = %+v, want %+v", d.CPU, wantCPU)
	}
	wantMem := MemoryDetail{
		Usage: 1048576, MaxUsage: 2097152, HasMaxUsage: true, WorkingSet: 1000000, RSS: 8192, Cache: 4096, MappedFile: 512,
		Swap: 16384, HasSwap: true, KernelUsage: 65536, Failcnt: 4, OOMKills: 2,
		PgFault: 50, PgMajFault: 1, HierarchyPgFault: 70, HierarchyPgMajFault: 3,
	}
	if d.Memory != wantMem {
		t.Errorf("memory = %+v\nwant %+v", d.Memory, wantMem)
	}
	if !reflect.DeepEqual(d.Pids, PidsDetail{Pids: []int{100, 101}, Threads: 3, ThreadsMax: 0}) {
		t.Errorf("pids = %+v", d.Pids)
	}
	wantSpec := SpecDetail{CPUShares: 1024, CPUPeriod: 100000, CPUQuota: 20000, MemoryLimit: 64 << 20, MemoryReservation: 0, MemorySwapLimit: 64 << 20}
	if d.Spec != wantSpec {
		t.Errorf("spec = %+v, want %+v", d.Spec, wantSpec)
	}
	wantIO := []DeviceIO{{Major: 8, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2}, {Major: 253, Minor: 1, ReadBytes: 1, WriteBytes: 2, Reads: 5, Writes: 6}}
	if !reflect.DeepEqual(d.IO, wantIO) {
		t.Errorf("io = %+v", d.IO)
	}
	if !reflect.DeepEqual(d.Hugetlb, []Hugetlb{{PageSize: "2MB", Usage: 2 << 20, MaxUsage: 4 << 20, HasMaxUsage: true}}) {
		t.Errorf("hugetlb = %+v", d.Hugetlb)
	}
	wantPSI := &Pressure{CPU: PressureTotals{3e6, 1e6}, IO: PressureTotals{5e6, 4e6}}
	if !reflect.DeepEqual(d.Pressure, wantPSI) {
		t.Errorf("pressure = %+v", d.Pressure)
	}
}

func TestReadDetailV1Fallbacks(t *testing.T) {
	// An older kernel: no usage_user/usage_sys (cpuacct.stat ticks), no
	// total_swap in memory.stat (memsw usage instead), no pids
	// controller (count tasks), no PSI, an unlimited quota, and
	// co-mounted cpu,cpuacct.
	files := map[string]string{}
	for k, v := range v1Fixture {
		switch {
		case strings.HasPrefix(k, "cpuacct/"):
			k = "cpu,cpuacct/" + strings.TrimPrefix(k, "cpuacct/")
		case strings.HasPrefix(k, "cpu/"):
			k = "cpu,cpuacct/" + strings.TrimPrefix(k, "cpu/")
		case strings.HasPrefix(k, "pids/"), strings.HasPrefix(k, "unified/"):
			continue
		}
		files[k] = v
	}
	delete(files, "cpu,cpuacct/c/cpuacct.usage_user")
	delete(files, "cpu,cpuacct/c/cpuacct.usage_sys")
	files["cpu,cpuacct/c/cpu.cfs_quota_us"] = "-1\n"
	files["memory/c/memory.stat"] = "total_rss 8192\n"
	files["memory/c/memory.memsw.usage_in_bytes"] = "1050000\n"
	root := t.TempDir()
	writeFiles(t, root, files)
	d, err := NewReader(root).ReadDetail("/c")
	if err != nil {
		t.Fatal(err)
	}
	if d.CPU.User != 999*tickNanos || d.CPU.System != 999*tickNanos || d.CPU.Periods != 40 {
		t.Errorf("cpu = %+v", d.CPU)
	}
	if d.Memory.Swap != 1050000-1048576 {
		t.Errorf("swap = %d", d.Memory.Swap)
	}
	if d.Pids.Threads != 3 || d.Spec.CPUQuota != 0 || d.Pressure != nil {
		t.Errorf("threads %d, quota %d, pressure %v", d.Pids.Threads, d.Spec.CPUQuota, d.Pressure)
	}
}

func TestReadDetailV2(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cgroup.controllers":         "cpu io memory pids hugetlb\n",
		"c/cpu.stat":                 "usage_usec 3500000\nuser_usec 2000000\nsystem_usec 1500000\nnr_periods 40\nnr_throttled 7\nthrottled_usec 2500000\n",
		"c/cpu.weight":               "39\n",
		"c/cpu.max":                  "20000 100000\n",
		"c/memory.current":           "1048576\n",
		"c/memory.peak":              "2097152\n",
		"c/memory.stat":              "anon 8192\nfile 4096\nkernel 65536\nfile_mapped 512\ninactive_file 48576\npgfault 70\npgmajfault 3\n",
		"c/memory.swap.current":      "16384\n",
		"c/memory.events":            "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\noom_group_kill 0\n",
		"c/memory.max":               "67108864\n",
		"c/memory.min":               "1048576\n",
		"c/memory.swap.max":          "max\n",
		"c/cgroup.procs":             "100\n",
		"c/pids.current":             "2\n",
		"c/pids.max":                 "1024\n",
		"c/io.stat":                  "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
		"c/hugetlb.2MB.current":      "0\n",
		"c/hugetlb.2MB.max":          "max\n",
		"c/hugetlb.2MB.rsvd.current": "0\n",
		"c/hugetlb.1GB.current":      "1073741824\n",
		"c/cpu.pressure":             "some avg10=0.00 avg60=0.00 avg300=0.00 total=3000000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\n",
	})
	d, err := NewReader(root).ReadDetail("/c")
	if err != nil {
		t.Fatal(err)
	}
	if d.CPU != (CPUDetail{Usage: 35e8, User: 2e9, System: 15e8, Periods: 40, ThrottledPeriods: 7, ThrottledNanos: 25e8}) {
		t.Errorf("cpu = %+v", d.CPU)
	}
	wantMem := MemoryDetail{
		Usage: 1048576, MaxUsage: 2097152, HasMaxUsage: true, WorkingSet: 1000000, RSS: 8192, Cache: 4096, MappedFile: 512,
		Swap: 16384, HasSwap: true, KernelUsage: 65536, Failcnt: 4, OOMKills: 1,
		PgFault: 70, PgMajFault: 3, HierarchyPgFault: 70, HierarchyPgMajFault: 3,
	}
	if d.Memory != wantMem {
		t.Errorf("memory = %+v\nwant %+v", d.Memory, wantMem)
	}
	if !reflect.DeepEqual(d.Pids, PidsDetail{Pids: []int{100}, Threads: 2, ThreadsMax: 1024}) {
		t.Errorf("pids = %+v", d.Pids)
	}
	// cpu.weight 39 is what runc writes for 1024 shares; the way back
	// loses precision as it does for cAdvisor.
	wantSpec := SpecDetail{CPUShares: 998, CPUPeriod: 100000, CPUQuota: 20000, MemoryLimit: 64 << 20, MemoryReservation: 1 << 20}
	if d.Spec != wantSpec {
		t.Errorf("spec = %+v, want %+v", d.Spec, wantSpec)
	}
	if !reflect.DeepEqual(d.IO, []DeviceIO{{Major: 8, ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2}}) {
		t.Errorf("io = %+v", d.IO)
	}
	if !reflect.DeepEqual(d.Hugetlb, []Hugetlb{{PageSize: "1GB", Usage: 1 << 30}, {PageSize: "2MB"}}) {
		t.Errorf("hugetlb = %+v", d.Hugetlb)
	}
	if d.Pressure == nil || d.Pressure.CPU != (PressureTotals{3e6, 1e6}) || d.Pressure.IO != (PressureTotals{}) {
		t.Errorf("pressure = %+v", d.Pressure)
	}
}

func TestReadDetailV2Older(t *testing.T) {
	// Before Linux 5.19 (no memory.peak) and 5.18 (no "kernel" in
	// memory.stat); an unlimited cpu.max.
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cgroup.controllers": "cpu memory\n",
		"c/cpu.stat":         "usage_usec 1\n",
		"c/cpu.max":          "max 100000\n",
		"c/memory.current":   "10\n",
		"c/memory.stat":      "kernel_stack 1\npagetables 2\nslab 4\nsock 8\n",
		"c/cgroup.procs":     "",
		"c/cgroup.threads":   "",
	})
	d, err := NewReader(root).ReadDetail("/c")
	if err != nil {
		t.Fatal(err)
	}
	if d.Memory.HasMaxUsage || d.Memory.HasSwap || d.Memory.KernelUsage != 15 || d.Spec.CPUQuota != 0 || d.Spec.CPUPeriod != 100000 || d.Pressure != nil {
		t.Errorf("detail = %+v", d)
	}
}

func TestReadDetailMissingCgroup(t *testing.T) {
	root := t.TempDir()
	for _, r := range []*Reader{NewReader(root), {root: root, v2: true}} {
		if _, err := r.ReadDetail("/gone"); err == nil || !strings.Contains(err.Error(), ErrNoCgroup.Error()) {
			t.Errorf("v2=%v: err = %v, want ErrNoCgroup", r.v2, err)
		}
	}
}

func TestParsePressureRejectsGarbage(t *testing.T) {
	if _, err := parsePressure(bufio.NewScanner(strings.NewReader("some total=x\n"))); err == nil {
		t.Error("garbage total parsed")
	}
}

func TestProcessFilesAndLimits(t *testing.T) {
	proc := t.TempDir()
	mk := func(pid string, fds map[string]string) {
		dir := filepath.Join(proc, pid, "fd")
		os.MkdirAll(dir, 0o755)
		for fd, target := range fds {
			if err := os.Symlink(target, filepath.Join(dir, fd)); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("10", map[string]string{"0": "/dev/null", "1": "pipe:[123]", "3": "socket:[456]"})
	mk("11", map[string]string{"0": "/dev/null", "5": "socket:[789]"})
	got := ReadProcessFiles(proc, []int{10, 11, 12}) // 12 exited meanwhile
	if got != (ProcessFiles{FileDescriptors: 5, Sockets: 2}) {
		t.Errorf("process files = %+v", got)
	}

	writeFiles(t, proc, map[string]string{
		"10/limits": "Limit                     Soft Limit           Hard Limit           Units     \n" +
			"Max cpu time              unlimited            unlimited            seconds   \n" +
			"Max open files            1024                 1048576              files     \n",
		"11/limits": "Max open files            unlimited            unlimited            files     \n",
		"12/limits": "Max cpu time              unlimited            unlimited            seconds   \n",
	})
	if v, ok, err := SoftOpenFilesLimit(proc, 10); v != 1024 || !ok || err != nil {
		t.Errorf("pid 10 limit = %d %v %v", v, ok, err)
	}
	if _, ok, err := SoftOpenFilesLimit(proc, 11); ok || err != nil {
		t.Errorf("pid 11 unlimited: ok=%v err=%v", ok, err)
	}
	if _, _, err := SoftOpenFilesLimit(proc, 12); err == nil {
		t.Error("pid 12 without the line read fine")
	}
}

func TestDeviceName(t *testing.T) {
	sys := t.TempDir()
	writeFiles(t, sys, map[string]string{"dev/block/8:1/uevent": "MAJOR=8\nMINOR=1\nDEVNAME=sda1\nDEVTYPE=partition\n"})
	if got := DeviceName(sys, 8, 1); got != "/dev/sda1" {
		t.Errorf("8:1 = %q", got)
	}
	if got := DeviceName(sys, 0, 52); got != "0:52" {
		t.Errorf("0:52 = %q", got)
	}
}

func TestReadFilesystem(t *testing.T) {
	fs, err := ReadFilesystem("/sys", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if fs.LimitBytes == 0 || fs.Device == "" {
		t.Errorf("filesystem = %+v", fs)
	}
	if _, err := ReadFilesystem("/sys", filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing path read fine")
	}
}
