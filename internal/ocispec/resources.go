package ocispec

import (
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/cgroups"
	"github.com/floe-cri/floe/internal/errdefs"
)

// Dropped is a limit left out of the spec: the host's cgroup hierarchy
// cannot hold it, and the value is one the kubelet sends by default rather
// than a real request.
type Dropped struct {
	Field  string // CRI field, e.g. linux.resources.hugepage_limits[1]
	Value  string
	Reason string
}

// LogDropped writes one debug line per dropped limit.
func LogDropped(log *slog.Logger, dropped []Dropped) {
	for _, d := range dropped {
		log.Debug("limit left out of the container's cgroup: the host cannot hold it and the value is the kubelet's default", "field", d.Field, "value", d.Value, "reason", d.Reason)
	}
}

var hugepageSize = regexp.MustCompile(`^[1-9][0-9]*[KMG]B$`)

// kubeletMinShares is the cpu.shares the kubelet sends for a container
// without a CPU request (its MinShares).
const kubeletMinShares = 2

const fieldPrefix = "linux.resources."

// LinuxResources converts Resources into the OCI form, for Build and for
// live updates (UpdateContainerResources), deciding for every limit whether
// the cgroup hierarchy runc will use (cg) can hold it.
//
// runc's cgroup managers fail the whole container on a limit they cannot
// write: on a hybrid host where hugetlb is bound to the cgroup2 tree, every
// hugepage_limits entry (even a zero the kubelet sends for each page size
// the node has) ends in "cannot set hugetlb limit". So a limit the host
// cannot hold is
//   - left out (reported in the returned list) when its value is what the
//     kubelet sends for "nothing asked": a zero hugepage limit, a memory+swap
//     limit equal to the memory limit (the kubelet's no-swap setting on
//     cgroup v1) or memory.swap.max "0" (the same on v2), a CPU quota of 0
//     or -1, a lone CFS period, the kubelet's minimum cpu shares;
//   - refused as FailedPrecondition naming the controller when it is a real
//     request (a 2Mi hugepage limit, swap above the memory limit, a memory
//     limit, a cpuset...): running the container without it would quietly
//     break what the pod asked for.
//
// A nil cg means nothing is known about the host: every limit is kept.
func LinuxResources(r Resources, cg *cgroups.Support) (*specs.LinuxResources, []Dropped, error) {
	d := decider{cg: cg}
	if err := r.Validate(); err != nil {
		return nil, nil, err
	}
	if err := checkHostCPUSet("cpuset_cpus", r.CpusetCpus, cg, "CPUs"); err != nil {
		return nil, nil, err
	}
	if err := checkHostCPUSet("cpuset_mems", r.CpusetMems, cg, "memory nodes"); err != nil {
		return nil, nil, err
	}

	out := &specs.LinuxResources{}
	var err error
	if out.CPU, err = d.cpu(r); err != nil {
		return nil, nil, err
	}
	if out.Memory, err = d.memory(r); err != nil {
		return nil, nil, err
	}
	for i, h := range r.Hugepages {
		keep, err := d.hugepage(i, h)
		if err != nil {
			return nil, nil, err
		}
		if keep {
			out.HugepageLimits = append(out.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.PageSize, Limit: h.Limit})
		}
	}
	if r.PidsLimit > 0 {
		if _, err := d.check(cgroups.CtrlPids, "pids_limit", r.PidsLimit, false); err != nil {
			return nil, nil, err
		}
		v := r.PidsLimit
		out.Pids = &specs.LinuxPids{Limit: &v}
	}
	if len(r.Unified) > 0 {
		unified, err := d.unified(r.Unified)
		if err != nil {
			return nil, nil, err
		}
		if len(unified) > 0 {
			out.Unified = unified
		}
	}
	return out, d.dropped, nil
}

// cpu is the container's CPU limits and cpusets (nil: none), those the
// host cannot hold dropped or refused.
func (d *decider) cpu(r Resources) (*specs.LinuxCPU, error) {
	cpu := &specs.LinuxCPU{}
	setCPU := false
	if r.CPUShares > 0 {
		keep, err := d.check(cgroups.CtrlCPU, "cpu_shares", r.CPUShares, r.CPUShares == kubeletMinShares)
		if err != nil {
			return nil, err
		}
		if keep {
			v := uint64(r.CPUShares)
			cpu.Shares, setCPU = &v, true
		}
	}
	if r.CPUQuota != 0 {
		keep, err := d.check(cgroups.CtrlCPU, "cpu_quota", r.CPUQuota, r.CPUQuota < 0)
		if err != nil {
			return nil, err
		}
		if keep {
			v := r.CPUQuota
			cpu.Quota, setCPU = &v, true
		}
	}
	if r.CPUPeriod > 0 {
		// A period only matters with a quota; the kubelet sends 100ms
		// with every container.
		keep, err := d.check(cgroups.CtrlCPU, "cpu_period", r.CPUPeriod, r.CPUQuota <= 0)
		if err != nil {
			return nil, err
		}
		if keep {
			v := uint64(r.CPUPeriod)
			cpu.Period, setCPU = &v, true
		}
	}
	if r.CpusetCpus != "" {
		if _, err := d.check(cgroups.CtrlCpuset, "cpuset_cpus", r.CpusetCpus, false); err != nil {
			return nil, err
		}
		cpu.Cpus, setCPU = r.CpusetCpus, true
	}
	if r.CpusetMems != "" {
		if _, err := d.check(cgroups.CtrlCpuset, "cpuset_mems", r.CpusetMems, false); err != nil {
			return nil, err
		}
		cpu.Mems, setCPU = r.CpusetMems, true
	}
	if !setCPU {
		return nil, nil
	}
	return cpu, nil
}

// memory is the container's memory and swap limits (nil: none), those the
// host cannot hold dropped or refused.
func (d *decider) memory(r Resources) (*specs.LinuxMemory, error) {
	mem := &specs.LinuxMemory{}
	if r.MemoryLimit > 0 {
		if _, err := d.check(cgroups.CtrlMemory, "memory_limit_in_bytes", r.MemoryLimit, false); err != nil {
			return nil, err
		}
		v := r.MemoryLimit
		mem.Limit = &v
	}
	if r.MemorySwapLimit > 0 {
		keep, err := d.swap(r.MemorySwapLimit, r.MemoryLimit)
		if err != nil {
			return nil, err
		}
		if keep {
			v := r.MemorySwapLimit
			mem.Swap = &v
		}
	}
	if mem.Limit == nil && mem.Swap == nil {
		return nil, nil
	}
	return mem, nil
}

// MinMemoryLimit is the smallest memory limit floe passes on. runc sets
// the limit once its init process is already in the cgroup, and the
// kernel refuses (EBUSY) a limit below what the cgroup already uses: runc
// 1.1.5's init alone was measured at 2.3 MB in use, 2.8 MB at peak, on
// this project's test host, so a 1-byte limit fails the container only
// after its rootfs, bundle and cgroup exist. 6 MiB is about twice that
// peak, and is the floor Docker has long documented for --memory.
const MinMemoryLimit = 6 << 20

// CPU bounds the kernel and runc enforce: runc reads cpu.shares back on
// cgroup v1 and fails when the kernel clamped it (to 2..262144), and CFS
// takes a period of 1ms..1s and a quota of at least 1ms (or -1).
const (
	minCPUShares = 2
	maxCPUShares = 262144
	minCFSUs     = 1000
	maxCFSPeriod = 1000000
)

// Validate checks the values on their own, without the host, so a request
// runc or the kernel would refuse is refused before anything is made.
func (r Resources) Validate() error {
	if r.MemoryLimit < 0 {
		return errdefs.InvalidArgument(fieldPrefix+"memory_limit_in_bytes", "%d is negative", r.MemoryLimit)
	}
	if r.MemoryLimit > 0 && r.MemoryLimit < MinMemoryLimit {
		return errdefs.InvalidArgument(fieldPrefix+"memory_limit_in_bytes", "%d is below %d (6 MiB), the smallest limit a container can start under (runc's own init needs about 3 MB of it)", r.MemoryLimit, MinMemoryLimit)
	}
	if r.MemorySwapLimit < 0 {
		return errdefs.InvalidArgument(fieldPrefix+"memory_swap_limit_in_bytes", "%d is negative", r.MemorySwapLimit)
	}
	if r.MemorySwapLimit > 0 && r.MemoryLimit > 0 && r.MemorySwapLimit < r.MemoryLimit {
		return errdefs.InvalidArgument(fieldPrefix+"memory_swap_limit_in_bytes", "%d is below the memory limit %d (it counts memory plus swap)", r.MemorySwapLimit, r.MemoryLimit)
	}
	if r.CPUShares != 0 && (r.CPUShares < minCPUShares || r.CPUShares > maxCPUShares) {
		return errdefs.InvalidArgument(fieldPrefix+"cpu_shares", "%d is outside [%d, %d], the kernel's range", r.CPUShares, minCPUShares, maxCPUShares)
	}
	if r.CPUQuota != 0 && r.CPUQuota != -1 && r.CPUQuota < minCFSUs {
		return errdefs.InvalidArgument(fieldPrefix+"cpu_quota", "%d is below %d µs, the smallest CFS quota (or -1 for none)", r.CPUQuota, minCFSUs)
	}
	if r.CPUPeriod != 0 && (r.CPUPeriod < minCFSUs || r.CPUPeriod > maxCFSPeriod) {
		return errdefs.InvalidArgument(fieldPrefix+"cpu_period", "%d is outside [%d, %d] µs, the CFS period range", r.CPUPeriod, minCFSUs, maxCFSPeriod)
	}
	if r.CpusetCpus != "" {
		if _, err := ParseCPUSet(r.CpusetCpus); err != nil {
			return errdefs.InvalidArgument(fieldPrefix+"cpuset_cpus", "%v", err)
		}
	}
	if r.CpusetMems != "" {
		if _, err := ParseCPUSet(r.CpusetMems); err != nil {
			return errdefs.InvalidArgument(fieldPrefix+"cpuset_mems", "%v", err)
		}
	}
	for i, h := range r.Hugepages {
		if !hugepageSize.MatchString(h.PageSize) {
			return errdefs.InvalidArgument(fmt.Sprintf(fieldPrefix+"hugepage_limits[%d].page_size", i), "%q: want a size like 2MB or 1GB", h.PageSize)
		}
	}
	return nil
}

// checkHostCPUSet refuses a (valid) cpuset naming CPUs or memory nodes the
// host does not have online: the kernel would refuse the write, after the
// container's cgroup exists.
func checkHostCPUSet(field, list string, cg *cgroups.Support, what string) error {
	if list == "" || cg == nil {
		return nil
	}
	hostList := cg.CPUs
	if field == "cpuset_mems" {
		hostList = cg.Mems
	}
	if hostList == "" {
		return nil
	}
	host, err := ParseCPUSet(hostList)
	if err != nil {
		return nil // an unreadable host list only loses the check
	}
	want, err := ParseCPUSet(list)
	if err != nil {
		return errdefs.InvalidArgument(fieldPrefix+field, "%v", err)
	}
	if missing := missingFromCPUSet(want, host); len(missing) > 0 {
		return errdefs.FailedPrecondition("%s%s: %q names %s %v, which this host does not have online (it has %s)", fieldPrefix, field, list, what, missing, hostList)
	}
	return nil
}

type decider struct {
	cg      *cgroups.Support
	dropped []Dropped
}

// check decides one limit that needs controller ctrl: keep it when the
// host has the controller, drop it when isDefault, refuse it otherwise.
func (d *decider) check(ctrl, field string, value any, isDefault bool) (bool, error) {
	if d.cg == nil || d.cg.Has(ctrl) {
		return true, nil
	}
	v := fmt.Sprint(value)
	if s, ok := value.(string); ok {
		v = strconv.Quote(s)
	}
	return d.missing(fieldPrefix+field, v, isDefault, d.cg.WhyMissing(ctrl))
}

func (d *decider) missing(field, value string, isDefault bool, why string) (bool, error) {
	if isDefault {
		d.dropped = append(d.dropped, Dropped{Field: field, Value: value, Reason: why})
		return false, nil
	}
	return false, errdefs.FailedPrecondition("%s: %s cannot be applied: %s", field, value, why)
}

func (d *decider) swap(swap, limit int64) (bool, error) {
	const field = "memory_swap_limit_in_bytes"
	// Equal to the memory limit means "no swap", which the kubelet sends
	// for every container with a memory limit on cgroup v1.
	isDefault := swap == limit
	if d.cg == nil {
		return true, nil
	}
	if !d.cg.Has(cgroups.CtrlMemory) {
		return d.check(cgroups.CtrlMemory, field, swap, isDefault)
	}
	if d.cg.MemorySwap {
		return true, nil
	}
	return d.missing(fieldPrefix+field, strconv.FormatInt(swap, 10), isDefault,
		fmt.Sprintf("swap accounting is off on this host (no %s; on cgroup v1 boot with swapaccount=1)", d.cg.SwapFile()))
}

func (d *decider) hugepage(i int, h Hugepage) (bool, error) {
	field := fmt.Sprintf(fieldPrefix+"hugepage_limits[%d]", i)
	value := fmt.Sprintf("%d bytes of %s pages", h.Limit, h.PageSize)
	// A zero limit is what the kubelet sends for each page size the node
	// has when the container asks for none of it.
	isDefault := h.Limit == 0
	switch {
	case d.cg == nil:
		return true, nil
	case !d.cg.Has(cgroups.CtrlHugetlb):
		return d.missing(field, value, isDefault, d.cg.WhyMissing(cgroups.CtrlHugetlb))
	case !d.cg.HasHugepageSize(h.PageSize):
		// runc would write hugetlb.<size>.limit_in_bytes, which the
		// kernel only has for its own page sizes.
		return d.missing(field, value, isDefault, fmt.Sprintf("the kernel has no %s huge pages (sizes: %s)", h.PageSize, strings.Join(d.cg.HugepageSizes, ", ")))
	}
	return true, nil
}

// unified checks cgroup v2 files. They need a v2 host (runc refuses them
// on v1 and hybrid ones) and, each, the controller named by its prefix.
func (d *decider) unified(in map[string]string) (map[string]string, error) {
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := map[string]string{}
	for _, k := range keys {
		v := in[k]
		field := fieldPrefix + "unified[" + k + "]"
		ctrl, _, ok := strings.Cut(k, ".")
		if !ok || ctrl == "" || strings.ContainsAny(k, "/\x00") {
			return nil, errdefs.InvalidArgument(field, "not a cgroup v2 file name (want controller.file, e.g. memory.high)")
		}
		if d.cg == nil {
			out[k] = v
			continue
		}
		if d.cg.Mode != cgroups.ModeV2 {
			return nil, errdefs.FailedPrecondition("%s: %q cannot be applied: cgroup v2 files need a cgroup v2 host and this one is cgroup %s", field, v, d.cg.Mode)
		}
		var keep bool
		var err error
		switch {
		case ctrl == "cgroup":
			keep = true
		case k == "memory.swap.max" && d.cg.Has(cgroups.CtrlMemory) && !d.cg.MemorySwap:
			// "0" is the kubelet's no-swap setting on cgroup v2.
			keep, err = d.missing(field, strconv.Quote(v), v == "0", "swap accounting is off on this host (no memory.swap.max)")
		case d.cg.Has(ctrl):
			keep = true
		default:
			keep, err = d.missing(field, strconv.Quote(v), false, d.cg.WhyMissing(ctrl))
		}
		if err != nil {
			return nil, err
		}
		if keep {
			out[k] = v
		}
	}
	return out, nil
}
