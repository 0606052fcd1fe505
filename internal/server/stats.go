package server

import (
	"context"
	"errors"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/sandbox"
	"github.com/floe-cri/floe/internal/stats"
)

// PodSandboxStats reports one pod's usage.
func (s *Server) PodSandboxStats(ctx context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	if req.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "must not be empty")
	}
	sb, err := s.deps.Sandboxes.Get(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: s.podStats(sb)}, nil
}

// ListPodSandboxStats reports every matching ready pod's usage.
func (s *Server) ListPodSandboxStats(ctx context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: s.listPodStats(req.GetFilter())}, nil
}

// StreamPodSandboxStats is ListPodSandboxStats in chunks.
func (s *Server) StreamPodSandboxStats(req *runtimeapi.StreamPodSandboxStatsRequest, stream runtimeapi.RuntimeService_StreamPodSandboxStatsServer) error {
	return toStatus(sendInChunks(s.listPodStats(req.GetFilter()), func(items []*runtimeapi.PodSandboxStats) error {
		return stream.Send(&runtimeapi.StreamPodSandboxStatsResponse{PodSandboxStats: items})
	}))
}

func (s *Server) listPodStats(rf *runtimeapi.PodSandboxStatsFilter) []*runtimeapi.PodSandboxStats {
	f := sandbox.Filter{State: sandbox.StateReady}
	if rf != nil {
		f.IDPrefix, f.Labels = rf.Id, rf.LabelSelector
	}
	var out []*runtimeapi.PodSandboxStats
	for _, sb := range s.deps.Sandboxes.List(f) {
		out = append(out, s.podStats(sb))
	}
	return out
}

// podStats reads the pod cgroup the kubelet created (CgroupParent) and
// the pod's network namespace. What cannot be read is left out, as the
// kubelet expects, and logged at debug level.
func (s *Server) podStats(sb *sandbox.Sandbox) *runtimeapi.PodSandboxStats {
	out := &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: sb.ID, Metadata: metadata(sb), Labels: sb.Spec.Labels, Annotations: sb.Spec.Annotations},
		Linux:      &runtimeapi.LinuxPodSandboxStats{},
	}
	if sb.State != sandbox.StateReady {
		return out
	}
	out.Linux.Containers = s.podContainerStats(sb.ID)
	if path := sb.CgroupPath; path != "" && s.deps.Stats != nil {
		cg, err := s.deps.Stats.Read(path)
		if err != nil {
			if !errors.Is(err, stats.ErrNoCgroup) {
				s.log.Debug("pod cgroup stats", "pod", sb.ID, "cgroup", path, "err", err)
			}
		} else {
			ts := cg.Time.UnixNano()
			out.Linux.Cpu = &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: u64(cg.CPUUsageNanos)}
			if cg.NanoCores != nil {
				out.Linux.Cpu.UsageNanoCores = u64(*cg.NanoCores)
			}
			out.Linux.Memory = &runtimeapi.MemoryUsage{
				Timestamp: ts, WorkingSetBytes: u64(cg.WorkingSet), UsageBytes: u64(cg.MemoryUsage), RssBytes: u64(cg.RSS),
				PageFaults: u64(cg.PageFaults), MajorPageFaults: u64(cg.MajorPageFaults),
			}
			if cg.MemoryLimit > 0 {
				out.Linux.Memory.AvailableBytes = u64(subFloor(cg.MemoryLimit, cg.WorkingSet))
			}
			out.Linux.Process = &runtimeapi.ProcessUsage{Timestamp: ts, ProcessCount: u64(cg.Processes)}
		}
	}
	if sb.NetnsPath != "" {
		ns, err := stats.ReadNetwork(sb.NetnsPath)
		if err != nil {
			s.log.Debug("pod network stats", "pod", sb.ID, "err", err)
		} else {
			nu := &runtimeapi.NetworkUsage{Timestamp: ns.Time.UnixNano()}
			for _, i := range ns.Interfaces {
				iu := &runtimeapi.NetworkInterfaceUsage{Name: i.Name, RxBytes: u64(i.RxBytes), RxErrors: u64(i.RxErrors), TxBytes: u64(i.TxBytes), TxErrors: u64(i.TxErrors)}
				nu.Interfaces = append(nu.Interfaces, iu)
				if sb.Network != nil && i.Name == sb.Network.IfName {
					nu.DefaultInterface = iu
				}
			}
			out.Linux.Network = nu
		}
	}
	return out
}

func u64(v uint64) *runtimeapi.UInt64Value { return &runtimeapi.UInt64Value{Value: v} }

func subFloor(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}
