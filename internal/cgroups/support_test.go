package cgroups

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeHost writes a mountinfo and the given files (relative to the fake
// file system root) and returns Paths reading them.
func fakeHost(t *testing.T, mountinfo string, files map[string]string, hugepages ...string) Paths {
	t.Helper()
	dir := t.TempDir()
	fs := filepath.Join(dir, "fs")
	for name, content := range files {
		p := filepath.Join(fs, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hp := filepath.Join(dir, "hugepages")
	for _, h := range hugepages {
		if err := os.MkdirAll(filepath.Join(hp, h), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mi := filepath.Join(dir, "mountinfo")
	if err := os.WriteFile(mi, []byte(mountinfo), 0o644); err != nil {
		t.Fatal(err)
	}
	self := filepath.Join(dir, "cgroup")
	os.WriteFile(self, []byte(files["#self"]), 0o644)
	return Paths{Mountinfo: mi, SelfCgroup: self, Root: "/sys/fs/cgroup", Hugepages: hp, FSPrefix: fs}
}

// The layout of the host floe is developed on: v1 controllers, hugetlb
// bound to the cgroup2 tree at unified/ (so /proc/cgroups lists it with
// hierarchy 0 and no v1 mount carries it).
const hybridMountinfo = `22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

func TestDetectHybridHugetlbOnlyInCgroup2(t *testing.T) {
	p := fakeHost(t, hybridMountinfo, map[string]string{
		"sys/fs/cgroup/unified/cgroup.controllers":         "hugetlb\n",
		"sys/fs/cgroup/memory/memory.memsw.limit_in_bytes": "9223372036854771712\n",
		"sys/fs/cgroup/cpu/cpu.rt_runtime_us":              "950000\n",
	}, "hugepages-2048kB", "hugepages-1048576kB")
	s, err := Detect(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Mode != ModeHybrid {
		t.Errorf("mode %q, want hybrid", s.Mode)
	}
	want := []string{"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"}
	if !slices.Equal(s.Controllers, want) {
		t.Errorf("controllers %q, want %q (name=systemd is no controller)", s.Controllers, want)
	}
	if s.Has(CtrlHugetlb) || !slices.Equal(s.Cgroup2Only, []string{"hugetlb"}) {
		t.Errorf("hugetlb: has=%v cgroup2Only=%q", s.Has(CtrlHugetlb), s.Cgroup2Only)
	}
	if !s.MemorySwap || !s.CPURealtime {
		t.Errorf("swap %v rt %v, want both", s.MemorySwap, s.CPURealtime)
	}
	if !slices.Equal(s.HugepageSizes, []string{"1GB", "2MB"}) {
		t.Errorf("page sizes %q", s.HugepageSizes)
	}
	if s.Mounts[CtrlMemory] != "/sys/fs/cgroup/memory" {
		t.Errorf("memory mount %q", s.Mounts[CtrlMemory])
	}
	sum := s.Summary()
	for _, w := range []string{"hybrid", "only in cgroup2, no limits through runc: hugetlb", "memory swap: yes"} {
		if !strings.Contains(sum, w) {
			t.Errorf("summary %q lacks %q", sum, w)
		}
	}
}

func TestDetectV1CoMountedAndNoSwap(t *testing.T) {
	// cpu,cpuacct share a hierarchy; a second mount of memory (a bind
	// elsewhere) does not replace the first; no memsw file means swap
	// accounting is off (swapaccount=0).
	mi := `30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
32 25 0:28 / /sys/fs/cgroup/hugetlb rw - cgroup cgroup rw,hugetlb
33 25 0:27 / /mnt/other\040dir rw - cgroup cgroup rw,memory
`
	p := fakeHost(t, mi, map[string]string{"sys/fs/cgroup/memory/memory.limit_in_bytes": "1"})
	s, err := Detect(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Mode != ModeV1 || !s.Has(CtrlHugetlb) || !s.Has(CtrlCPU) || s.Has(CtrlPids) {
		t.Errorf("%+v", s)
	}
	if s.Mounts[CtrlCPU] != "/sys/fs/cgroup/cpu,cpuacct" || s.Mounts[CtrlMemory] != "/sys/fs/cgroup/memory" {
		t.Errorf("mounts %v", s.Mounts)
	}
	if s.MemorySwap || s.CPURealtime {
		t.Errorf("swap %v rt %v, want neither", s.MemorySwap, s.CPURealtime)
	}
	if len(s.HugepageSizes) != 0 || !s.HasHugepageSize("2MB") {
		t.Errorf("unknown page sizes must accept any: %q", s.HugepageSizes)
	}
}

func TestDetectV2(t *testing.T) {
	mi := "25 20 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
	p := fakeHost(t, mi, map[string]string{
		"sys/fs/cgroup/cgroup.controllers":                "cpuset cpu io memory pids\n",
		"sys/fs/cgroup/system.slice/floe/memory.swap.max": "max\n",
		"#self": "0::/system.slice/floe\n",
	}, "hugepages-2048kB")
	s, err := Detect(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Mode != ModeV2 || !slices.Equal(s.Controllers, []string{"cpu", "cpuset", "io", "memory", "pids"}) {
		t.Errorf("%+v", s)
	}
	if s.Has(CtrlHugetlb) || !s.MemorySwap || s.CPURealtime {
		t.Errorf("hugetlb %v swap %v rt %v", s.Has(CtrlHugetlb), s.MemorySwap, s.CPURealtime)
	}

	// floe in the root cgroup: no swap file there; a child has one.
	p = fakeHost(t, mi, map[string]string{
		"sys/fs/cgroup/cgroup.controllers":         "memory hugetlb\n",
		"sys/fs/cgroup/init.scope/memory.swap.max": "max\n",
		"#self": "0::/\n",
	})
	if s, err = Detect(p); err != nil || !s.MemorySwap || !s.Has(CtrlHugetlb) {
		t.Errorf("root: %+v %v", s, err)
	}
	// No swap anywhere (kernel without swap accounting).
	p = fakeHost(t, mi, map[string]string{"sys/fs/cgroup/cgroup.controllers": "memory\n", "#self": "0::/\n"})
	if s, err = Detect(p); err != nil || s.MemorySwap {
		t.Errorf("no swap: %+v %v", s, err)
	}
}

func TestDetectErrors(t *testing.T) {
	if _, err := Detect(fakeHost(t, "22 28 0:21 / /proc rw - proc proc rw\n", nil)); err == nil {
		t.Error("no cgroup mounts accepted")
	}
	if _, err := Detect(fakeHost(t, "garbage\n", nil)); err == nil {
		t.Error("malformed mountinfo accepted")
	}
	// v2 root without cgroup.controllers is not something runc can use.
	if _, err := Detect(fakeHost(t, "25 20 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", nil)); err == nil {
		t.Error("v2 without cgroup.controllers accepted")
	}
}

func TestPageSizeName(t *testing.T) {
	for in, want := range map[uint64]string{2 << 20: "2MB", 1 << 30: "1GB", 64 << 10: "64KB", 16 << 30: "16GB", 512 << 20: "512MB"} {
		if got := PageSizeName(in); got != want {
			t.Errorf("PageSizeName(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestDetectThisHost(t *testing.T) {
	s, err := Detect(HostPaths)
	if err != nil {
		t.Skipf("no cgroups here: %v", err)
	}
	t.Logf("this host: %s", s.Summary())
}
