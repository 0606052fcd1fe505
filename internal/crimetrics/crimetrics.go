// Package crimetrics turns what internal/stats reads (cgroups, /proc, the
// pod's network namespace, the writable layer's filesystem) into the CRI
// metrics of ListMetricDescriptors / ListPodSandboxMetrics: the cAdvisor
// names and labels the kubelet serves on /metrics/cadvisor when it takes
// container metrics from the runtime (PodAndContainerStatsFromCRI).
//
// Every series carries the base labels id, image, namespace, pod and
// container ("POD" for the pod's own series, as cAdvisor names the
// sandbox); some add their own (cpu, device, interface...). A value the
// host cannot give (no PSI on a v1 cgroup, no memory.peak before Linux
// 5.19) is left out rather than reported as zero. CRI values are
// integers, so "seconds" series are whole seconds.
package crimetrics

import (
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// BaseLabels are the label keys every series starts with.
var BaseLabels = []string{"id", "image", "namespace", "pod", "container"}

// desc is one metric: its CRI descriptor and its type.
type desc struct {
	name  string
	help  string
	typ   runtimeapi.MetricType
	extra []string // label keys after BaseLabels
}

const (
	counter = runtimeapi.MetricType_COUNTER
	gauge   = runtimeapi.MetricType_GAUGE
)

// The metrics, in the groups cAdvisor has.
var (
	// CPU.
	cpuUsage            = &desc{"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", counter, []string{"cpu"}}
	cpuUser             = &desc{"container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", counter, nil}
	cpuSystem           = &desc{"container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", counter, nil}
	cpuCfsPeriods       = &desc{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", counter, nil}
	cpuCfsThrottled     = &desc{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", counter, nil}
	cpuCfsThrottledSecs = &desc{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", counter, nil}

	// Memory.
	memUsage      = &desc{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", gauge, nil}
	memMaxUsage   = &desc{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.", gauge, nil}
	memWorkingSet = &desc{"container_memory_working_set_bytes", "Current working set in bytes.", gauge, nil}
	memRSS        = &desc{"container_memory_rss", "Size of RSS in bytes.", gauge, nil}
	memCache      = &desc{"container_memory_cache", "Number of bytes of page cache memory.", gauge, nil}
	memMapped     = &desc{"container_memory_mapped_file", "Size of memory mapped files in bytes.", gauge, nil}
	memSwap       = &desc{"container_memory_swap", "Container swap usage in bytes.", gauge, nil}
	memKernel     = &desc{"container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", gauge, nil}
	memFailcnt    = &desc{"container_memory_failcnt", "Number of memory usage hits limits.", counter, nil}
	memFailures   = &desc{"container_memory_failures_total", "Cumulative count of memory allocation failures.", counter, []string{"failure_type", "scope"}}
	oomEvents     = &desc{"container_oom_events_total", "Count of out of memory events observed for the container.", counter, nil}

	// Huge pages.
	hugetlbUsage    = &desc{"container_hugetlb_usage_bytes", "Current hugepage usage in bytes.", gauge, []string{"pagesize"}}
	hugetlbMaxUsage = &desc{"container_hugetlb_max_usage_bytes", "Maximum hugepage usage recorded in bytes.", gauge, []string{"pagesize"}}

	// Filesystem (the writable layer) and block I/O.
	fsUsage       = &desc{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", gauge, []string{"device"}}
	fsLimit       = &desc{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", gauge, []string{"device"}}
	fsInodesTotal = &desc{"container_fs_inodes_total", "Number of Inodes.", gauge, []string{"device"}}
	fsInodesFree  = &desc{"container_fs_inodes_free", "Number of available Inodes.", gauge, []string{"device"}}
	fsReadsBytes  = &desc{"container_fs_reads_bytes_total", "Cumulative count of bytes read.", counter, []string{"device"}}
	fsReads       = &desc{"container_fs_reads_total", "Cumulative count of reads completed.", counter, []string{"device"}}
	fsWritesBytes = &desc{"container_fs_writes_bytes_total", "Cumulative count of bytes written.", counter, []string{"device"}}
	fsWrites      = &desc{"container_fs_writes_total", "Cumulative count of writes completed.", counter, []string{"device"}}
	blkioUsage    = &desc{"container_blkio_device_usage_total", "Blkio device bytes usage.", counter, []string{"device", "major", "minor", "operation"}}

	// Network (pod level: containers share the pod's namespace).
	netRxBytes   = &desc{"container_network_receive_bytes_total", "Cumulative count of bytes received.", counter, []string{"interface"}}
	netRxPackets = &desc{"container_network_receive_packets_total", "Cumulative count of packets received.", counter, []string{"interface"}}
	netRxDropped = &desc{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", counter, []string{"interface"}}
	netRxErrors  = &desc{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", counter, []string{"interface"}}
	netTxBytes   = &desc{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", counter, []string{"interface"}}
	netTxPackets = &desc{"container_network_transmit_packets_total", "Cumulative count of packets transmitted.", counter, []string{"interface"}}
	netTxDropped = &desc{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", counter, []string{"interface"}}
	netTxErrors  = &desc{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", counter, []string{"interface"}}

	// Processes.
	processes       = &desc{"container_processes", "Number of processes running inside the container.", gauge, nil}
	threads         = &desc{"container_threads", "Number of threads running inside the container.", gauge, nil}
	threadsMax      = &desc{"container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero.", gauge, nil}
	fileDescriptors = &desc{"container_file_descriptors", "Number of open file descriptors for the container.", gauge, nil}
	sockets         = &desc{"container_sockets", "Number of open sockets for the container.", gauge, nil}
	ulimitsSoft     = &desc{"container_ulimits_soft", "Soft ulimit values for the container root process. Unlimited if -1, except priority and nice.", gauge, []string{"ulimit"}}

	// Spec: the limits as the kernel holds them.
	specCPUShares         = &desc{"container_spec_cpu_shares", "CPU share of the container.", gauge, nil}
	specCPUPeriod         = &desc{"container_spec_cpu_period", "CPU period of the container.", gauge, nil}
	specCPUQuota          = &desc{"container_spec_cpu_quota", "CPU quota of the container.", gauge, nil}
	specMemoryLimit       = &desc{"container_spec_memory_limit_bytes", "Memory limit for the container.", gauge, nil}
	specMemoryReservation = &desc{"container_spec_memory_reservation_limit_bytes", "Memory reservation limit for the container.", gauge, nil}
	specMemorySwapLimit   = &desc{"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", gauge, nil}
	startTime             = &desc{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", gauge, nil}
	lastSeen              = &desc{"container_last_seen", "Last time a container was seen by the exporter.", gauge, nil}

	// Pressure stall information (cgroup v2, or a hybrid host's unified
	// hierarchy).
	psiCPUWaiting = &desc{"container_pressure_cpu_waiting_seconds_total", "Total time duration tasks in the container have waited due to CPU congestion.", counter, nil}
	psiCPUStalled = &desc{"container_pressure_cpu_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to CPU congestion.", counter, nil}
	psiMemWaiting = &desc{"container_pressure_memory_waiting_seconds_total", "Total time duration tasks in the container have waited due to memory congestion.", counter, nil}
	psiMemStalled = &desc{"container_pressure_memory_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to memory congestion.", counter, nil}
	psiIOWaiting  = &desc{"container_pressure_io_waiting_seconds_total", "Total time duration tasks in the container have waited due to IO congestion.", counter, nil}
	psiIOStalled  = &desc{"container_pressure_io_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to IO congestion.", counter, nil}
)

var all = []*desc{
	cpuUsage, cpuUser, cpuSystem, cpuCfsPeriods, cpuCfsThrottled, cpuCfsThrottledSecs,
	memUsage, memMaxUsage, memWorkingSet, memRSS, memCache, memMapped, memSwap, memKernel, memFailcnt, memFailures, oomEvents,
	hugetlbUsage, hugetlbMaxUsage,
	fsUsage, fsLimit, fsInodesTotal, fsInodesFree, fsReadsBytes, fsReads, fsWritesBytes, fsWrites, blkioUsage,
	netRxBytes, netRxPackets, netRxDropped, netRxErrors, netTxBytes, netTxPackets, netTxDropped, netTxErrors,
	processes, threads, threadsMax, fileDescriptors, sockets, ulimitsSoft,
	specCPUShares, specCPUPeriod, specCPUQuota, specMemoryLimit, specMemoryReservation, specMemorySwapLimit, startTime, lastSeen,
	psiCPUWaiting, psiCPUStalled, psiMemWaiting, psiMemStalled, psiIOWaiting, psiIOStalled,
}

var descriptors = func() []*runtimeapi.MetricDescriptor {
	out := make([]*runtimeapi.MetricDescriptor, 0, len(all))
	for _, d := range all {
		keys := append(append([]string{}, BaseLabels...), d.extra...)
		out = append(out, &runtimeapi.MetricDescriptor{Name: d.name, Help: d.help, LabelKeys: keys})
	}
	return out
}()

// Descriptors lists every metric ListPodSandboxMetrics may return.
func Descriptors() []*runtimeapi.MetricDescriptor { return descriptors }

// Owner is whose series these are: the base label values.
type Owner struct {
	ID, Image, Namespace, Pod, Container string
}

// series collects metrics of one owner at one timestamp.
type series struct {
	base []string
	ts   int64
	out  []*runtimeapi.Metric
}

func newSeries(o Owner, ts int64) *series {
	return &series{base: []string{o.ID, o.Image, o.Namespace, o.Pod, o.Container}, ts: ts}
}

// add appends one value; extra must match d's extra label keys, which
// the package's tests check for every series it emits.
func (s *series) add(d *desc, v uint64, extra ...string) {
	labels := s.base
	if len(extra) > 0 {
		labels = append(append(make([]string, 0, len(s.base)+len(extra)), s.base...), extra...)
	}
	s.out = append(s.out, &runtimeapi.Metric{
		Name: d.name, Timestamp: s.ts, MetricType: d.typ, LabelValues: labels,
		Value: &runtimeapi.UInt64Value{Value: v},
	})
}
