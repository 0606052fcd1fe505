package server

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podLinuxResources is the OCI form of pod-level resources the kubelet
// has applied to the pod cgroup, as NRI plugins are told of them: every
// value the kubelet set, none dropped (nil for none).
func podLinuxResources(r *runtimeapi.LinuxContainerResources) *specs.LinuxResources {
	if r == nil {
		return nil
	}
	out := &specs.LinuxResources{
		CPU:    &specs.LinuxCPU{Cpus: r.CpusetCpus, Mems: r.CpusetMems},
		Memory: &specs.LinuxMemory{},
	}
	if r.CpuShares != 0 {
		shares := uint64(r.CpuShares)
		out.CPU.Shares = &shares
	}
	if r.CpuQuota != 0 {
		out.CPU.Quota = &r.CpuQuota
	}
	if r.CpuPeriod != 0 {
		period := uint64(r.CpuPeriod)
		out.CPU.Period = &period
	}
	if r.MemoryLimitInBytes != 0 {
		out.Memory.Limit = &r.MemoryLimitInBytes
	}
	if r.MemorySwapLimitInBytes != 0 {
		out.Memory.Swap = &r.MemorySwapLimitInBytes
	}
	for _, h := range r.HugepageLimits {
		out.HugepageLimits = append(out.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.PageSize, Limit: h.Limit})
	}
	if len(r.Unified) > 0 {
		out.Unified = r.Unified
	}
	return out
}
