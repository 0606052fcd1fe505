package stats

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Detail is everything cAdvisor reports for a cgroup, read from the cgroup
// files of either version. It feeds the CRI metrics (ListPodSandboxMetrics).
// A field the kernel does not offer on this host is left at its zero value
// and its Has* flag (or nil pointer) says so, so that a missing file never
// turns into a fake zero.
type Detail struct {
	Time time.Time

	CPU      CPUDetail
	Memory   MemoryDetail
	Pids     PidsDetail
	Spec     SpecDetail
	IO       []DeviceIO // per device, sorted by major:minor
	Hugetlb  []Hugetlb  // per page size, sorted by name
	Pressure *Pressure  // nil where the kernel has no PSI for the cgroup
}

// CPUDetail is cumulative CPU time in nanoseconds and CFS throttling.
type CPUDetail struct {
	Usage  uint64
	User   uint64
	System uint64

	Periods          uint64
	ThrottledPeriods uint64
	ThrottledNanos   uint64
}

// MemoryDetail is the memory controller's view, in bytes unless noted.
type MemoryDetail struct {
	Usage       uint64
	MaxUsage    uint64
	HasMaxUsage bool // v2 has memory.peak only from Linux 5.19
	WorkingSet  uint64
	RSS         uint64
	Cache       uint64
	MappedFile  uint64
	Swap        uint64
	HasSwap     bool // false without swap accounting
	KernelUsage uint64
	Failcnt     uint64 // times usage hit the limit
	OOMKills    uint64

	// Page faults, for the cgroup alone (container scope) and with its
	// descendants (hierarchy scope). v2 counters are hierarchical only.
	PgFault             uint64
	PgMajFault          uint64
	HierarchyPgFault    uint64
	HierarchyPgMajFault uint64
}

// PidsDetail counts the cgroup's processes and tasks.
type PidsDetail struct {
	Pids       []int  // the processes (cgroup.procs)
	Threads    uint64 // tasks, pids.current
	ThreadsMax uint64 // pids.max; 0 when unlimited
}

// SpecDetail is the resource configuration as the kernel holds it (so an
// UpdateContainerResources shows). Zero means unlimited or unset.
type SpecDetail struct {
	CPUShares uint64
	CPUPeriod uint64
	CPUQuota  uint64 // 0 when unlimited
	// MemoryLimit, MemoryReservation and MemorySwapLimit are bytes; 0 when
	// unlimited. On v1 the swap limit is memory+swap (memsw), on v2 the
	// swap alone (memory.swap.max), as cAdvisor reports them.
	MemoryLimit       uint64
	MemoryReservation uint64
	MemorySwapLimit   uint64
}

// DeviceIO is block I/O of one device.
type DeviceIO struct {
	Major, Minor          uint64
	ReadBytes, WriteBytes uint64
	Reads, Writes         uint64
}

// Hugetlb is the usage of one huge page size ("2MB", "1GB").
type Hugetlb struct {
	PageSize    string
	Usage       uint64
	MaxUsage    uint64
	HasMaxUsage bool // v1 only
}

// Pressure is PSI totals in microseconds: Some is time at least one task
// waited, Full time all non-idle tasks were stalled.
type Pressure struct {
	CPU, Memory, IO PressureTotals
}

// PressureTotals is one resource's PSI line totals.
type PressureTotals struct {
	Some, Full uint64
}

// unlimited is the size above which cgroup v1 memory limits mean "no
// limit" (the kernel rounds LLONG_MAX down to a page multiple).
const unlimited = 1 << 62

// ReadDetail reads the full cAdvisor set of the cgroup at path (relative
// to each hierarchy, like Read).
func (r *Reader) ReadDetail(path string) (*Detail, error) {
	d := &Detail{Time: time.Now()}
	var err error
	if r.v2 {
		err = r.detailV2(filepath.Join(r.root, path), d)
	} else {
		err = r.detailV1(path, d)
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// v1Dir is the directory of a v1 controller's cgroup; co-mounted
// controllers (cpu,cpuacct) share one hierarchy.
func (r *Reader) v1Dir(controller, path string) string {
	names := []string{controller}
	if controller == "cpu" || controller == "cpuacct" {
		names = append(names, "cpu,cpuacct", "cpuacct,cpu")
	}
	for _, name := range names {
		dir := filepath.Join(r.root, name, path)
		if _, err := os.Stat(dir); err == nil {
			return dir
		}
	}
	return filepath.Join(r.root, controller, path)
}

func (r *Reader) detailV1(path string, d *Detail) error {
	cpuacct, cpu, mem := r.v1Dir("cpuacct", path), r.v1Dir("cpu", path), r.v1Dir("memory", path)

	// CPU.
	var err error
	if d.CPU.Usage, err = readUint(filepath.Join(cpuacct, "cpuacct.usage")); err != nil {
		return err
	}
	// usage_user/usage_sys are nanoseconds; cpuacct.stat (USER_HZ ticks)
	// is the fallback on kernels before 4.7.
	user, uerr := readUint(filepath.Join(cpuacct, "cpuacct.usage_user"))
	sys, serr := readUint(filepath.Join(cpuacct, "cpuacct.usage_sys"))
	if uerr == nil && serr == nil {
		d.CPU.User, d.CPU.System = user, sys
	} else if st, err := readKV(filepath.Join(cpuacct, "cpuacct.stat")); err == nil {
		d.CPU.User, d.CPU.System = st["user"]*tickNanos, st["system"]*tickNanos
	}
	if st, err := readKV(filepath.Join(cpu, "cpu.stat")); err == nil {
		d.CPU.Periods, d.CPU.ThrottledPeriods, d.CPU.ThrottledNanos = st["nr_periods"], st["nr_throttled"], st["throttled_time"]
	}

	// Memory.
	if d.Memory.Usage, err = readUint(filepath.Join(mem, "memory.usage_in_bytes")); err != nil {
		return err
	}
	stat, err := readKV(filepath.Join(mem, "memory.stat"))
	if err != nil {
		return err
	}
	m := &d.Memory
	m.RSS, m.Cache, m.MappedFile = stat["total_rss"], stat["total_cache"], stat["total_mapped_file"]
	m.WorkingSet = subFloor(m.Usage, stat["total_inactive_file"])
	m.PgFault, m.PgMajFault = stat["pgfault"], stat["pgmajfault"]
	m.HierarchyPgFault, m.HierarchyPgMajFault = stat["total_pgfault"], stat["total_pgmajfault"]
	if sw, ok := stat["total_swap"]; ok {
		m.Swap, m.HasSwap = sw, true
	} else if memsw, err := readUint(filepath.Join(mem, "memory.memsw.usage_in_bytes")); err == nil {
		m.Swap, m.HasSwap = subFloor(memsw, m.Usage), true
	}
	if m.MaxUsage, err = readUint(filepath.Join(mem, "memory.max_usage_in_bytes")); err == nil {
		m.HasMaxUsage = true
	}
	m.KernelUsage, _ = readUint(filepath.Join(mem, "memory.kmem.usage_in_bytes"))
	m.Failcnt, _ = readUint(filepath.Join(mem, "memory.failcnt"))
	if oc, err := readKV(filepath.Join(mem, "memory.oom_control")); err == nil {
		m.OOMKills = oc["oom_kill"]
	}

	// Processes.
	pids := r.v1Dir("pids", path)
	d.Pids.Pids, _ = readPids(filepath.Join(mem, "cgroup.procs"))
	if n, err := readUint(filepath.Join(pids, "pids.current")); err == nil {
		d.Pids.Threads = n
	} else if tasks, err := readPids(filepath.Join(mem, "tasks")); err == nil {
		d.Pids.Threads = uint64(len(tasks))
	}
	d.Pids.ThreadsMax, _, _ = readLimit(filepath.Join(pids, "pids.max"))

	// Spec.
	sp := &d.Spec
	sp.CPUShares, _ = readUint(filepath.Join(cpu, "cpu.shares"))
	sp.CPUPeriod, _ = readUint(filepath.Join(cpu, "cpu.cfs_period_us"))
	if q, err := readInt(filepath.Join(cpu, "cpu.cfs_quota_us")); err == nil && q > 0 {
		sp.CPUQuota = uint64(q)
	}
	sp.MemoryLimit = v1Limit(filepath.Join(mem, "memory.limit_in_bytes"))
	sp.MemoryReservation = v1Limit(filepath.Join(mem, "memory.soft_limit_in_bytes"))
	sp.MemorySwapLimit = v1Limit(filepath.Join(mem, "memory.memsw.limit_in_bytes"))

	// Block I/O: the throttle files count every bio, whatever the I/O
	// scheduler; BFQ's are the fallback on kernels without them.
	blkio := r.v1Dir("blkio", path)
	for _, prefix := range []string{"blkio.throttle.", "blkio.bfq.", "blkio."} {
		ios, err := readBlkioV1(filepath.Join(blkio, prefix+"io_service_bytes_recursive"), filepath.Join(blkio, prefix+"io_serviced_recursive"))
		if err == nil && len(ios) > 0 {
			d.IO = ios
			break
		}
	}

	// Huge pages: the v1 controller, or on a hybrid host the unified
	// hierarchy where the kernel moved it.
	if hp, err := readHugetlbV1(r.v1Dir("hugetlb", path)); err == nil && len(hp) > 0 {
		d.Hugetlb = hp
	} else if hp, err := readHugetlbV2(filepath.Join(r.root, "unified", path)); err == nil {
		d.Hugetlb = hp
	}

	// PSI exists only in cgroup2; a hybrid host has it in the unified
	// hierarchy when the runtime put the container there too.
	d.Pressure = readPressure(filepath.Join(r.root, "unified", path))
	return nil
}

// tickNanos is one USER_HZ tick (100 Hz on every Linux ABI) in ns.
const tickNanos = uint64(time.Second / 100)

func (r *Reader) detailV2(dir string, d *Detail) error {
	cpu, err := readKV(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return err
	}
	d.CPU = CPUDetail{
		Usage: cpu["usage_usec"] * 1000, User: cpu["user_usec"] * 1000, System: cpu["system_usec"] * 1000,
		Periods: cpu["nr_periods"], ThrottledPeriods: cpu["nr_throttled"], ThrottledNanos: cpu["throttled_usec"] * 1000,
	}

	m := &d.Memory
	if m.Usage, err = readUint(filepath.Join(dir, "memory.current")); err != nil {
		return err
	}
	stat, err := readKV(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return err
	}
	m.RSS, m.Cache, m.MappedFile = stat["anon"], stat["file"], stat["file_mapped"]
	m.WorkingSet = subFloor(m.Usage, stat["inactive_file"])
	m.PgFault, m.PgMajFault = stat["pgfault"], stat["pgmajfault"]
	m.HierarchyPgFault, m.HierarchyPgMajFault = m.PgFault, m.PgMajFault
	if k, ok := stat["kernel"]; ok { // Linux 5.18+
		m.KernelUsage = k
	} else {
		m.KernelUsage = stat["kernel_stack"] + stat["pagetables"] + stat["slab"] + stat["sock"]
	}
	if m.Swap, err = readUint(filepath.Join(dir, "memory.swap.current")); err == nil {
		m.HasSwap = true
	}
	if m.MaxUsage, err = readUint(filepath.Join(dir, "memory.peak")); err == nil {
		m.HasMaxUsage = true
	}
	if ev, err := readKV(filepath.Join(dir, "memory.events")); err == nil {
		m.Failcnt, m.OOMKills = ev["max"], ev["oom_kill"]
	}

	d.Pids.Pids, _ = readPids(filepath.Join(dir, "cgroup.procs"))
	if n, err := readUint(filepath.Join(dir, "pids.current")); err == nil {
		d.Pids.Threads = n
	} else if tasks, err := readPids(filepath.Join(dir, "cgroup.threads")); err == nil {
		d.Pids.Threads = uint64(len(tasks))
	}
	d.Pids.ThreadsMax, _, _ = readLimit(filepath.Join(dir, "pids.max"))

	sp := &d.Spec
	if w, err := readUint(filepath.Join(dir, "cpu.weight")); err == nil {
		sp.CPUShares = weightToShares(w)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cpu.max")); err == nil {
		sp.CPUQuota, sp.CPUPeriod = parseCPUMax(string(b))
	}
	sp.MemoryLimit, _, _ = readLimit(filepath.Join(dir, "memory.max"))
	sp.MemoryReservation, _ = readUint(filepath.Join(dir, "memory.min"))
	sp.MemorySwapLimit, _, _ = readLimit(filepath.Join(dir, "memory.swap.max"))

	if b, err := os.ReadFile(filepath.Join(dir, "io.stat")); err == nil {
		d.IO = parseIOStat(string(b))
	}
	d.Hugetlb, _ = readHugetlbV2(dir)
	d.Pressure = readPressure(dir)
	return nil
}

// weightToShares inverts the runtimes' shares -> cpu.weight mapping
// (weight = 1 + (shares-2)*9999/262142), as cAdvisor does.
func weightToShares(w uint64) uint64 {
	if w == 0 {
		return 0
	}
	return 2 + (w-1)*262142/9999
}

// parseCPUMax parses cpu.max ("max 100000" or "20000 100000").
func parseCPUMax(s string) (quota, period uint64) {
	f := strings.Fields(s)
	if len(f) >= 1 && f[0] != "max" {
		quota, _ = strconv.ParseUint(f[0], 10, 64)
	}
	if len(f) >= 2 {
		period, _ = strconv.ParseUint(f[1], 10, 64)
	}
	return quota, period
}

// readLimit reads a v2 limit file; "max" is 0 (unlimited).
func readLimit(path string) (v uint64, limited bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, false, nil
	}
	v, err = strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("parse %s: %w", path, err)
	}
	return v, true, nil
}

// v1Limit reads a v1 memory limit; the "no limit" value becomes 0.
func v1Limit(path string) uint64 {
	v, err := readUint(path)
	if err != nil || v >= unlimited {
		return 0
	}
	return v
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// readPids reads a cgroup.procs / tasks file.
func readPids(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoCgroup)
	}
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", path, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// readBlkioV1 parses a v1 blkio bytes file and its operations-count
// sibling ("8:0 Read 4096" lines; a final "Total N" line has no device).
func readBlkioV1(bytesPath, opsPath string) ([]DeviceIO, error) {
	byDev := map[[2]uint64]*DeviceIO{}
	for i, p := range []string{bytesPath, opsPath} {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 {
				continue
			}
			maj, min, ok := parseDev(f[0])
			if !ok {
				continue
			}
			v, err := strconv.ParseUint(f[2], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("parse %s: %w", p, err)
			}
			io := byDev[[2]uint64{maj, min}]
			if io == nil {
				io = &DeviceIO{Major: maj, Minor: min}
				byDev[[2]uint64{maj, min}] = io
			}
			switch {
			case f[1] == "Read" && i == 0:
				io.ReadBytes = v
			case f[1] == "Write" && i == 0:
				io.WriteBytes = v
			case f[1] == "Read":
				io.Reads = v
			case f[1] == "Write":
				io.Writes = v
			}
		}
	}
	return sortIO(byDev), nil
}

// parseIOStat parses v2 io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...").
func parseIOStat(s string) []DeviceIO {
	byDev := map[[2]uint64]*DeviceIO{}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		maj, min, ok := parseDev(f[0])
		if !ok {
			continue
		}
		io := &DeviceIO{Major: maj, Minor: min}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				continue
			}
			switch k {
			case "rbytes":
				io.ReadBytes = n
			case "wbytes":
				io.WriteBytes = n
			case "rios":
				io.Reads = n
			case "wios":
				io.Writes = n
			}
		}
		byDev[[2]uint64{maj, min}] = io
	}
	return sortIO(byDev)
}

func sortIO(m map[[2]uint64]*DeviceIO) []DeviceIO {
	out := make([]DeviceIO, 0, len(m))
	for _, io := range m {
		out = append(out, *io)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Major != out[j].Major {
			return out[i].Major < out[j].Major
		}
		return out[i].Minor < out[j].Minor
	})
	return out
}

func parseDev(s string) (maj, min uint64, ok bool) {
	a, b, found := strings.Cut(s, ":")
	if !found {
		return 0, 0, false
	}
	maj, err1 := strconv.ParseUint(a, 10, 64)
	min, err2 := strconv.ParseUint(b, 10, 64)
	return maj, min, err1 == nil && err2 == nil
}

// readHugetlbV1 reads hugetlb.<size>.usage_in_bytes and
// max_usage_in_bytes for every page size the controller offers.
func readHugetlbV1(dir string) ([]Hugetlb, error) {
	sizes, err := hugetlbSizes(dir, ".usage_in_bytes")
	if err != nil {
		return nil, err
	}
	var out []Hugetlb
	for _, size := range sizes {
		h := Hugetlb{PageSize: size}
		if h.Usage, err = readUint(filepath.Join(dir, "hugetlb."+size+".usage_in_bytes")); err != nil {
			return nil, err
		}
		if h.MaxUsage, err = readUint(filepath.Join(dir, "hugetlb."+size+".max_usage_in_bytes")); err == nil {
			h.HasMaxUsage = true
		}
		out = append(out, h)
	}
	return out, nil
}

// readHugetlbV2 reads hugetlb.<size>.current (v2 keeps no maximum).
func readHugetlbV2(dir string) ([]Hugetlb, error) {
	sizes, err := hugetlbSizes(dir, ".current")
	if err != nil {
		return nil, err
	}
	var out []Hugetlb
	for _, size := range sizes {
		v, err := readUint(filepath.Join(dir, "hugetlb."+size+".current"))
		if err != nil {
			return nil, err
		}
		out = append(out, Hugetlb{PageSize: size, Usage: v})
	}
	return out, nil
}

// hugetlbSizes lists the page sizes of "hugetlb.<size><suffix>" files.
func hugetlbSizes(dir, suffix string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "hugetlb.*"+suffix))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range matches {
		size := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), "hugetlb."), suffix)
		if size != "" && !strings.Contains(size, ".") { // not hugetlb.2MB.rsvd.current
			out = append(out, size)
		}
	}
	sort.Strings(out)
	return out, nil
}

// readPressure reads cpu/memory/io.pressure in dir; nil when the cgroup
// has no PSI files (v1, or a kernel without PSI).
func readPressure(dir string) *Pressure {
	p := &Pressure{}
	found := false
	for name, dst := range map[string]*PressureTotals{"cpu.pressure": &p.CPU, "memory.pressure": &p.Memory, "io.pressure": &p.IO} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		t, err := parsePressure(bufio.NewScanner(f))
		f.Close()
		if err != nil {
			continue
		}
		*dst = t
		found = true
	}
	if !found {
		return nil
	}
	return p
}

// parsePressure parses "some avg10=0.00 avg60=0.00 avg300=0.00 total=N"
// and the "full" line.
func parsePressure(sc *bufio.Scanner) (PressureTotals, error) {
	var t PressureTotals
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			if k != "total" {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return t, fmt.Errorf("parse pressure total %q: %w", v, err)
			}
			switch f[0] {
			case "some":
				t.Some = n
			case "full":
				t.Full = n
			}
		}
	}
	return t, sc.Err()
}
