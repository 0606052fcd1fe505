package server

import (
	"context"
	"errors"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/stats"
)

// ContainerStats reports one container's usage.
func (s *Server) ContainerStats(ctx context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	if err := s.needContainers(req.ContainerId); err != nil {
		return nil, err
	}
	c, err := s.deps.Containers.Get(req.ContainerId)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ContainerStatsResponse{Stats: s.containerStats(c)}, nil
}

// ListContainerStats reports every matching container's usage.
func (s *Server) ListContainerStats(ctx context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	return &runtimeapi.ListContainerStatsResponse{Stats: s.listContainerStats(req.GetFilter())}, nil
}

// StreamContainerStats is ListContainerStats in chunks.
func (s *Server) StreamContainerStats(req *runtimeapi.StreamContainerStatsRequest, stream runtimeapi.RuntimeService_StreamContainerStatsServer) error {
	return toStatus(sendInChunks(s.listContainerStats(req.GetFilter()), func(items []*runtimeapi.ContainerStats) error {
		return stream.Send(&runtimeapi.StreamContainerStatsResponse{ContainerStats: items})
	}))
}

func (s *Server) listContainerStats(rf *runtimeapi.ContainerStatsFilter) []*runtimeapi.ContainerStats {
	if s.deps.Containers == nil {
		return nil
	}
	var f container.Filter
	if rf != nil {
		f.IDPrefix, f.SandboxID, f.Labels = rf.Id, rf.PodSandboxId, rf.LabelSelector
	}
	var out []*runtimeapi.ContainerStats
	for _, c := range s.deps.Containers.List(f) {
		out = append(out, s.containerStats(c))
	}
	return out
}

// podContainerStats are the stats of a pod's containers, for
// PodSandboxStats.
func (s *Server) podContainerStats(sandboxID string) []*runtimeapi.ContainerStats {
	if s.deps.Containers == nil {
		return nil
	}
	var out []*runtimeapi.ContainerStats
	for _, c := range s.deps.Containers.List(container.Filter{SandboxID: sandboxID}) {
		if c.SandboxID == sandboxID {
			out = append(out, s.containerStats(c))
		}
	}
	return out
}

// containerStats reads the container's cgroup (while it runs) and its
// writable layer. What cannot be read is left out, as the kubelet
// expects, and logged at debug level.
func (s *Server) containerStats(c *container.Container) *runtimeapi.ContainerStats {
	out := &runtimeapi.ContainerStats{Attributes: &runtimeapi.ContainerAttributes{
		Id: c.ID, Metadata: &runtimeapi.ContainerMetadata{Name: c.Spec.Name, Attempt: c.Spec.Attempt},
		Labels: c.Spec.Labels, Annotations: c.Spec.Annotations,
	}}
	log := s.log.With("container", c.ID, "pod", c.SandboxID)
	if c.State == container.StateRunning && s.deps.Stats != nil {
		if path, err := s.deps.Containers.CgroupPath(c); err != nil {
			log.Debug("container cgroup", "err", err)
		} else if cg, err := s.deps.Stats.Read(path); err != nil {
			if !errors.Is(err, stats.ErrNoCgroup) {
				log.Debug("container cgroup stats", "cgroup", path, "err", err)
			}
		} else {
			out.Cpu, out.Memory = cpuMemoryUsage(cg)
		}
	}
	if s.deps.Images != nil && c.Rootfs != "" {
		if u, err := s.deps.Images.ContainerLayerUsage(c.ID); err != nil {
			log.Debug("container writable layer usage", "err", err)
		} else {
			out.WritableLayer = &runtimeapi.FilesystemUsage{
				Timestamp: u.Timestamp.UnixNano(), FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: u.Mountpoint},
				UsedBytes: u64(u.UsedBytes), InodesUsed: u64(u.InodesUsed),
			}
		}
	}
	return out
}

// cpuMemoryUsage turns a cgroup sample into the CRI's CPU and memory
// usage.
func cpuMemoryUsage(cg *stats.CgroupSample) (*runtimeapi.CpuUsage, *runtimeapi.MemoryUsage) {
	ts := cg.Time.UnixNano()
	cpu := &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: u64(cg.CPUUsageNanos)}
	if cg.NanoCores != nil {
		cpu.UsageNanoCores = u64(*cg.NanoCores)
	}
	mem := &runtimeapi.MemoryUsage{
		Timestamp: ts, WorkingSetBytes: u64(cg.WorkingSet), UsageBytes: u64(cg.MemoryUsage), RssBytes: u64(cg.RSS),
		PageFaults: u64(cg.PageFaults), MajorPageFaults: u64(cg.MajorPageFaults),
	}
	if cg.MemoryLimit > 0 {
		mem.AvailableBytes = u64(subFloor(cg.MemoryLimit, cg.WorkingSet))
	}
	return cpu, mem
}
