package server

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/sandbox"
	"github.com/floe-cri/floe/internal/stats"
)

// The cAdvisor-named metrics floe computes for the kubelet's
// /metrics/cadvisor (PodAndContainerStatsFromCRI). Only what floe really
// measures is listed. Label keys follow CRI-O: id (container or pod id),
// name (container name, "POD" for pod-level series), image, and
// interface for network series. Values are integers (the CRI field is a
// uint64), so CPU seconds are whole seconds.
var (
	baseLabels    = []string{"id", "name", "image"}
	networkLabels = []string{"id", "name", "image", "interface"}

	metricDescriptors = []*runtimeapi.MetricDescriptor{
		{Name: "container_cpu_usage_seconds_total", Help: "Cumulative cpu time consumed in seconds.", LabelKeys: baseLabels},
		{Name: "container_memory_usage_bytes", Help: "Current memory usage in bytes, including all memory regardless of when it was accessed.", LabelKeys: baseLabels},
		{Name: "container_memory_working_set_bytes", Help: "Current working set in bytes.", LabelKeys: baseLabels},
		{Name: "container_memory_rss", Help: "Size of RSS in bytes.", LabelKeys: baseLabels},
		{Name: "container_fs_usage_bytes", Help: "Number of bytes consumed by the container's writable layer.", LabelKeys: baseLabels},
		{Name: "container_last_seen", Help: "Last time a container was seen by the exporter (unix seconds).", LabelKeys: baseLabels},
		{Name: "container_network_receive_bytes_total", Help: "Cumulative count of bytes received.", LabelKeys: networkLabels},
		{Name: "container_network_transmit_bytes_total", Help: "Cumulative count of bytes transmitted.", LabelKeys: networkLabels},
		{Name: "container_network_receive_errors_total", Help: "Cumulative count of errors encountered while receiving.", LabelKeys: networkLabels},
		{Name: "container_network_transmit_errors_total", Help: "Cumulative count of errors encountered while transmitting.", LabelKeys: networkLabels},
	}
)

// ListMetricDescriptors lists the metrics ListPodSandboxMetrics returns.
func (s *Server) ListMetricDescriptors(ctx context.Context, req *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	return &runtimeapi.ListMetricDescriptorsResponse{Descriptors: metricDescriptors}, nil
}

// ListPodSandboxMetrics reports every ready pod's metrics and its
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

func (s *Server) podMetrics() []*runtimeapi.PodSandboxMetrics {
	var out []*runtimeapi.PodSandboxMetrics
	for _, sb := range s.deps.Sandboxes.List(sandbox.Filter{State: sandbox.StateReady}) {
		pm := &runtimeapi.PodSandboxMetrics{PodSandboxId: sb.ID}
		if sb.NetnsPath != "" {
			if ns, err := stats.ReadNetwork(sb.NetnsPath); err != nil {
				s.log.Debug("pod network metrics", "pod", sb.ID, "err", err)
			} else {
				ts := ns.Time.UnixNano()
				for _, i := range ns.Interfaces {
					labels := []string{sb.ID, "POD", "", i.Name}
					pm.Metrics = append(pm.Metrics,
						metric("container_network_receive_bytes_total", ts, runtimeapi.MetricType_COUNTER, labels, i.RxBytes),
						metric("container_network_transmit_bytes_total", ts, runtimeapi.MetricType_COUNTER, labels, i.TxBytes),
						metric("container_network_receive_errors_total", ts, runtimeapi.MetricType_COUNTER, labels, i.RxErrors),
						metric("container_network_transmit_errors_total", ts, runtimeapi.MetricType_COUNTER, labels, i.TxErrors))
				}
			}
		}
		for _, cs := range s.podContainerStats(sb.ID) {
			pm.ContainerMetrics = append(pm.ContainerMetrics, s.containerMetrics(cs))
		}
		out = append(out, pm)
	}
	return out
}

func (s *Server) containerMetrics(cs *runtimeapi.ContainerStats) *runtimeapi.ContainerMetrics {
	id := cs.Attributes.GetId()
	image := ""
	if s.deps.Containers != nil {
		if c, err := s.deps.Containers.Get(id); err == nil {
			image = c.ReportedImage()
		}
	}
	labels := []string{id, cs.Attributes.GetMetadata().GetName(), image}
	cm := &runtimeapi.ContainerMetrics{ContainerId: id}
	now := time.Now()
	cm.Metrics = append(cm.Metrics, metric("container_last_seen", now.UnixNano(), runtimeapi.MetricType_GAUGE, labels, uint64(now.Unix())))
	if cpu := cs.Cpu; cpu != nil && cpu.UsageCoreNanoSeconds != nil {
		cm.Metrics = append(cm.Metrics, metric("container_cpu_usage_seconds_total", cpu.Timestamp, runtimeapi.MetricType_COUNTER, labels, cpu.UsageCoreNanoSeconds.Value/uint64(time.Second)))
	}
	if mem := cs.Memory; mem != nil {
		cm.Metrics = append(cm.Metrics,
			metric("container_memory_usage_bytes", mem.Timestamp, runtimeapi.MetricType_GAUGE, labels, mem.UsageBytes.GetValue()),
			metric("container_memory_working_set_bytes", mem.Timestamp, runtimeapi.MetricType_GAUGE, labels, mem.WorkingSetBytes.GetValue()),
			metric("container_memory_rss", mem.Timestamp, runtimeapi.MetricType_GAUGE, labels, mem.RssBytes.GetValue()))
	}
	if fs := cs.WritableLayer; fs != nil {
		cm.Metrics = append(cm.Metrics, metric("container_fs_usage_bytes", fs.Timestamp, runtimeapi.MetricType_GAUGE, labels, fs.UsedBytes.GetValue()))
	}
	return cm
}

func metric(name string, ts int64, t runtimeapi.MetricType, labels []string, v uint64) *runtimeapi.Metric {
	return &runtimeapi.Metric{Name: name, Timestamp: ts, MetricType: t, LabelValues: labels, Value: u64(v)}
}
