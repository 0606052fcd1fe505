package server

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/crimetrics"
	"github.com/floe-cri/floe/internal/sandbox"
	"github.com/floe-cri/floe/internal/stats"
)

// ListMetricDescriptors lists the cAdvisor metrics ListPodSandboxMetrics
// returns (internal/crimetrics).
func (s *Server) ListMetricDescriptors(ctx context.Context, req *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	return &runtimeapi.ListMetricDescriptorsResponse{Descriptors: crimetrics.Descriptors()}, nil
}

// ListPodSandboxMetrics reports every ready pod's metrics and its running
// containers'.
func (s *Server) ListPodSandboxMetrics(ctx context.Context, req *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	return &runtimeapi.ListPodSandboxMetricsResponse{PodMetrics: s.podMetrics()}, nil
}

// StreamPodSandboxMetrics is ListPodSandboxMetrics in chunks.
func (s *Server) StreamPodSandboxMetrics(req *runtimeapi.StreamPodSandboxMetricsRequest, stream runtimeapi.RuntimeService_StreamPodSandboxMetricsServer) error {
	return toStatus(sendInChunks(s.podMetrics(), func(items []*runtimeapi.PodSandboxMetrics) error {
		return stream.Send(&runtimeapi.StreamPodSandboxMetricsResponse{PodSandboxMetrics: items})
	}))
}

// podMetrics gathers what floe knows of each pod and container for
// crimetrics, which reads the host and names the series.
func (s *Server) podMetrics() []*runtimeapi.PodSandboxMetrics {
	col := &crimetrics.Collector{Cgroups: s.deps.Stats, ProcRoot: "/proc", SysRoot: "/sys"}
	var out []*runtimeapi.PodSandboxMetrics
	for _, sb := range s.deps.Sandboxes.List(sandbox.Filter{State: sandbox.StateReady}) {
		pm := &runtimeapi.PodSandboxMetrics{PodSandboxId: sb.ID}
		if sb.NetnsPath != "" {
			if ns, err := stats.ReadNetwork(sb.NetnsPath); err != nil {
				s.log.Debug("pod network metrics", "pod", sb.ID, "err", err)
			} else {
				pm.Metrics = crimetrics.Pod(crimetrics.Owner{ID: sb.ID, Namespace: sb.Spec.Namespace, Pod: sb.Spec.Name, Container: "POD"}, ns)
			}
		}
		if s.deps.Containers != nil {
			for _, c := range s.deps.Containers.List(container.Filter{SandboxID: sb.ID, State: container.StateRunning}) {
				if c.SandboxID != sb.ID {
					continue
				}
				pm.ContainerMetrics = append(pm.ContainerMetrics, s.containerMetrics(col, sb, c))
			}
		}
		out = append(out, pm)
	}
	return out
}

func (s *Server) containerMetrics(col *crimetrics.Collector, sb *sandbox.Sandbox, c *container.Container) *runtimeapi.ContainerMetrics {
	log := s.log.With("container", c.ID, "pod", sb.ID)
	in := crimetrics.Container{
		Owner: crimetrics.Owner{ID: c.ID, Image: c.ReportedImage(), Namespace: sb.Spec.Namespace, Pod: sb.Spec.Name, Container: c.Spec.Name},
	}
	if c.StartedAt != 0 {
		in.StartedAt = time.Unix(0, c.StartedAt)
	}
	if c.Monitor != nil {
		in.Pid = c.Monitor.Pid
	}
	if path, err := s.deps.Containers.CgroupPath(c); err != nil {
		log.Debug("container cgroup", "err", err)
	} else {
		in.CgroupPath = path
	}
	if s.deps.Images != nil && c.Rootfs != "" {
		if u, err := s.deps.Images.ContainerLayerUsage(c.ID); err != nil {
			log.Debug("container writable layer usage", "err", err)
		} else {
			in.Layer = &crimetrics.Layer{UsedBytes: u.UsedBytes, Mountpoint: u.Mountpoint}
		}
	}
	metrics, errs := col.Container(in)
	for _, err := range errs {
		log.Debug("container metrics", "err", err)
	}
	return &runtimeapi.ContainerMetrics{ContainerId: c.ID, Metrics: metrics}
}
