package ocispec

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/cgroups"
	"github.com/floe-cri/floe/internal/errdefs"
)

// hybridHost is the development host: v1 controllers, hugetlb only in the
// cgroup2 tree, swap accounting and RT scheduling on.
func hybridHost() *cgroups.Support {
	return &cgroups.Support{
		Mode:          cgroups.ModeHybrid,
		Controllers:   []string{"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"},
		Cgroup2Only:   []string{"hugetlb"},
		MemorySwap:    true,
		CPURealtime:   true,
		HugepageSizes: []string{"1GB", "2MB"},
	}
}

// bareV1 has memory without swap accounting and neither cpuset, pids nor
// hugetlb; cpu is missing too.
func bareV1() *cgroups.Support {
	return &cgroups.Support{Mode: cgroups.ModeV1, Controllers: []string{"memory"}, HugepageSizes: []string{"2MB"}}
}

func v2Host(swap bool) *cgroups.Support {
	return &cgroups.Support{Mode: cgroups.ModeV2, Controllers: []string{"cpu", "cpuset", "hugetlb", "io", "memory", "pids"}, MemorySwap: swap, HugepageSizes: []string{"2MB"}}
}

func TestLinuxResourcesKeepDropRefuse(t *testing.T) {
	type check func(t *testing.T, r *specs.LinuxResources, dropped []Dropped)
	for _, tc := range []struct {
		name    string
		cg      *cgroups.Support
		in      Resources
		refuse  string // substring of a FailedPrecondition; "" means accepted
		dropped []string
		check   check
	}{
		{
			name: "hybrid: kubelet's zero hugepage limits and no-swap default",
			cg:   hybridHost(),
			in: Resources{CPUShares: 2, CPUPeriod: 100000, MemoryLimit: 128 << 20, MemorySwapLimit: 128 << 20,
				Hugepages: []Hugepage{{PageSize: "2MB"}, {PageSize: "1GB"}}},
			dropped: []string{"hugepage_limits[0]", "hugepage_limits[1]"},
			check: func(t *testing.T, r *specs.LinuxResources, _ []Dropped) {
				if len(r.HugepageLimits) != 0 || r.Memory == nil || *r.Memory.Swap != 128<<20 || *r.CPU.Shares != 2 || *r.CPU.Period != 100000 {
					t.Errorf("%+v", r)
				}
			},
		},
		{name: "hybrid: 2Mi of huge pages", cg: hybridHost(),
			in:     Resources{Hugepages: []Hugepage{{PageSize: "2MB", Limit: 2 << 20}, {PageSize: "1GB"}}},
			refuse: "hugepage_limits[0]: 2097152 bytes of 2MB pages cannot be applied: the hugetlb controller is mounted only in the cgroup2 tree"},
		{name: "hybrid: unified refused", cg: hybridHost(), in: Resources{Unified: map[string]string{"memory.high": "1000"}}, refuse: "need a cgroup v2 host"},
		{name: "hybrid: everything else kept", cg: hybridHost(),
			in: Resources{CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000, CpusetCpus: "0", CpusetMems: "0", MemoryLimit: 1 << 30, MemorySwapLimit: 2 << 30, PidsLimit: 10},
			check: func(t *testing.T, r *specs.LinuxResources, _ []Dropped) {
				if *r.CPU.Quota != 50000 || r.CPU.Mems != "0" || *r.Memory.Swap != 2<<30 || *r.Pids.Limit != 10 {
					t.Errorf("%+v", r)
				}
			}},
		{name: "v1 hugetlb: zero limit for a size the kernel lacks", cg: &cgroups.Support{Mode: cgroups.ModeV1, Controllers: []string{"hugetlb"}, HugepageSizes: []string{"2MB"}},
			in: Resources{Hugepages: []Hugepage{{PageSize: "2MB"}, {PageSize: "1GB"}}}, dropped: []string{"hugepage_limits[1]"},
			check: func(t *testing.T, r *specs.LinuxResources, _ []Dropped) {
				if len(r.HugepageLimits) != 1 || r.HugepageLimits[0].Pagesize != "2MB" {
					t.Errorf("%+v", r.HugepageLimits)
				}
			}},
		{name: "v1 hugetlb: real limit for a size the kernel lacks", cg: &cgroups.Support{Mode: cgroups.ModeV1, Controllers: []string{"hugetlb"}, HugepageSizes: []string{"2MB"}},
			in: Resources{Hugepages: []Hugepage{{PageSize: "1GB", Limit: 1 << 30}}}, refuse: "no 1GB huge pages"},
		{name: "no swap accounting: swap equal to memory is dropped", cg: bareV1(),
			in: Resources{MemoryLimit: 1 << 30, MemorySwapLimit: 1 << 30}, dropped: []string{"memory_swap_limit_in_bytes"},
			check: func(t *testing.T, r *specs.LinuxResources, _ []Dropped) {
				if *r.Memory.Limit != 1<<30 || r.Memory.Swap != nil {
					t.Errorf("%+v", r.Memory)
				}
			}},
		{name: "no swap accounting: swap above memory is refused", cg: bareV1(),
			in: Resources{MemoryLimit: 1 << 30, MemorySwapLimit: 2 << 30}, refuse: "swap accounting is off on this host (no memory.memsw.limit_in_bytes"},
		{name: "no swap accounting: swap without a memory limit is refused", cg: bareV1(),
			in: Resources{MemorySwapLimit: 2 << 30}, refuse: "memory_swap_limit_in_bytes"},
		{name: "no cpu controller: kubelet's cpu defaults dropped", cg: bareV1(),
			in: Resources{CPUShares: 2, CPUQuota: -1, CPUPeriod: 100000}, dropped: []string{"cpu_shares", "cpu_quota", "cpu_period"},
			check: func(t *testing.T, r *specs.LinuxResources, _ []Dropped) {
				if r.CPU != nil {
					t.Errorf("%+v", r.CPU)
				}
			}},
		{name: "no cpu controller: a CPU request", cg: bareV1(), in: Resources{CPUShares: 512}, refuse: "cpu_shares: 512 cannot be applied: the cpu controller is not available"},
		{name: "no cpu controller: a CPU limit", cg: bareV1(), in: Resources{CPUShares: 2, CPUQuota: 20000, CPUPeriod: 100000}, refuse: "cpu_quota"},
		{name: "no cpuset controller", cg: bareV1(), in: Resources{CpusetCpus: "0-1"}, refuse: "cpuset_cpus: \"0-1\"", check: nil},
		{name: "no pids controller", cg: bareV1(), in: Resources{PidsLimit: 100}, refuse: "the pids controller"},
		{name: "no memory controller", cg: &cgroups.Support{Mode: cgroups.ModeV1, Controllers: []string{"cpu"}}, in: Resources{MemoryLimit: 64 << 20}, refuse: "the memory controller"},
		{name: "v2: no-swap default dropped without swap", cg: v2Host(false),
			in: Resources{MemoryLimit: 1 << 30, Unified: map[string]string{"memory.swap.max": "0", "memory.high": "900"}}, dropped: []string{"unified[memory.swap.max]"},
			check: func(t *testing.T, r *specs.LinuxResources, _ []Dropped) {
				if _, ok := r.Unified["memory.swap.max"]; ok || r.Unified["memory.high"] != "900" {
					t.Errorf("%v", r.Unified)
				}
			}},
		{name: "v2: swap limit refused without swap", cg: v2Host(false), in: Resources{Unified: map[string]string{"memory.swap.max": "1000000"}}, refuse: "memory.swap.max"},
		{name: "v2: swap kept with swap", cg: v2Host(true), in: Resources{MemoryLimit: 1 << 30, MemorySwapLimit: 2 << 30, Unified: map[string]string{"memory.swap.max": "0"}},
			check: func(t *testing.T, r *specs.LinuxResources, _ []Dropped) {
				if r.Unified["memory.swap.max"] != "0" || *r.Memory.Swap != 2<<30 {
					t.Errorf("%+v", r)
				}
			}},
		{name: "v2: unified file of a missing controller", cg: v2Host(true), in: Resources{Unified: map[string]string{"rdma.max": "x"}}, refuse: "the rdma controller is not available in this host's cgroup v2"},
		{name: "v2: hugetlb kept", cg: v2Host(true), in: Resources{Hugepages: []Hugepage{{PageSize: "2MB", Limit: 4 << 20}}},
			check: func(t *testing.T, r *specs.LinuxResources, _ []Dropped) {
				if len(r.HugepageLimits) != 1 || r.HugepageLimits[0].Limit != 4<<20 {
					t.Errorf("%+v", r.HugepageLimits)
				}
			}},
		{name: "unknown host keeps everything", cg: nil, in: Resources{Hugepages: []Hugepage{{PageSize: "2MB"}}, Unified: map[string]string{"memory.high": "1"}},
			check: func(t *testing.T, r *specs.LinuxResources, _ []Dropped) {
				if len(r.HugepageLimits) != 1 || r.Unified["memory.high"] != "1" {
					t.Errorf("%+v", r)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, dropped, err := LinuxResources(tc.in, tc.cg)
			if tc.refuse != "" {
				if errdefs.KindOf(err) != errdefs.KindFailedPrecondition || !strings.Contains(err.Error(), tc.refuse) {
					t.Fatalf("got %v, want FailedPrecondition containing %q", err, tc.refuse)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var fields []string
			for _, d := range dropped {
				fields = append(fields, strings.TrimPrefix(d.Field, "linux.resources."))
				if d.Reason == "" || d.Value == "" {
					t.Errorf("dropped without value or reason: %+v", d)
				}
			}
			if strings.Join(fields, ",") != strings.Join(tc.dropped, ",") {
				t.Errorf("dropped %q, want %q", fields, tc.dropped)
			}
			if tc.check != nil {
				tc.check(t, r, dropped)
			}
		})
	}
}

func TestLinuxResourcesInvalid(t *testing.T) {
	for _, in := range []Resources{
		{MemoryLimit: -1},
		{MemorySwapLimit: -1},
		{MemoryLimit: 64 << 20, MemorySwapLimit: 32 << 20},
		{MemoryLimit: 1},
		{MemoryLimit: MinMemoryLimit - 1},
		{CPUShares: 1},
		{CPUShares: 262145},
		{CPUShares: -2},
		{CPUQuota: 999},
		{CPUQuota: -2},
		{CPUPeriod: 999},
		{CPUPeriod: 1000001},
		{CpusetCpus: "abc"},
		{CpusetCpus: "0-"},
		{CpusetCpus: "3-1"},
		{CpusetCpus: "0,,1"},
		{CpusetCpus: "-1"},
		{CpusetCpus: "0-99999999999999999999"},
		{CpusetMems: "abc"},
		{CpusetMems: " "},
		{Hugepages: []Hugepage{{PageSize: "2Mi"}}},
		{Unified: map[string]string{"nodot": "1"}},
		{Unified: map[string]string{"../memory.max": "1"}},
	} {
		// Bad input is InvalidArgument whatever the host, before any
		// controller is considered.
		for _, cg := range []*cgroups.Support{nil, hybridHost(), v2Host(true)} {
			if _, _, err := LinuxResources(in, cg); errdefs.KindOf(err) != errdefs.KindInvalidArgument {
				t.Errorf("%+v on %v: %v", in, cg, err)
			}
		}
	}
}

func TestLinuxResourcesBoundsAccepted(t *testing.T) {
	for _, in := range []Resources{
		{MemoryLimit: MinMemoryLimit},
		{CPUShares: 2}, {CPUShares: 262144},
		{CPUQuota: -1}, {CPUQuota: 1000, CPUPeriod: 1000}, {CPUPeriod: 1000000},
		{CpusetCpus: "0-1", CpusetMems: "0"}, {CpusetCpus: "1,0"},
	} {
		if _, _, err := LinuxResources(in, nil); err != nil {
			t.Errorf("%+v: %v", in, err)
		}
	}
}

func TestLinuxResourcesCPUSetNotOnHost(t *testing.T) {
	cg := hybridHost()
	cg.CPUs, cg.Mems = "0-3", "0"
	for _, tc := range []struct {
		in    Resources
		field string
	}{
		{Resources{CpusetCpus: "0,4"}, "cpuset_cpus"},
		{Resources{CpusetCpus: "8000-8191"}, "cpuset_cpus"},
		{Resources{CpusetMems: "1"}, "cpuset_mems"},
	} {
		_, _, err := LinuxResources(tc.in, cg)
		if errdefs.KindOf(err) != errdefs.KindFailedPrecondition || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: %v, want FailedPrecondition naming %s", tc.in, err, tc.field)
		}
	}
	if _, _, err := LinuxResources(Resources{CpusetCpus: "1-3", CpusetMems: "0"}, cg); err != nil {
		t.Errorf("cpus on the host: %v", err)
	}
	// An unknown host list skips the check.
	cg.CPUs, cg.Mems = "", ""
	if _, _, err := LinuxResources(Resources{CpusetCpus: "7", CpusetMems: "3"}, cg); err != nil {
		t.Errorf("unknown host cpus: %v", err)
	}
}

func TestParseCPUSet(t *testing.T) {
	set, err := ParseCPUSet("0-3,5,62-130,8191")
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n <= maxCPUSetID; n++ {
		want := n <= 3 || n == 5 || (n >= 62 && n <= 130) || n == 8191
		if set.Has(n) != want {
			t.Errorf("Has(%d) = %v", n, !want)
		}
	}
	host, _ := ParseCPUSet("0-63")
	if got := missingFromCPUSet(set, host); len(got) != 8 || got[0] != 64 {
		t.Errorf("missing = %v", got)
	}
	// Many wide ranges stay cheap.
	if _, err := ParseCPUSet(strings.Repeat("0-8191,", 100000) + "1"); err != nil {
		t.Error(err)
	}
}
