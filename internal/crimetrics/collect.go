package crimetrics

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/stats"
)

// Collector reads a container's or a pod's metrics from the host.
type Collector struct {
	Cgroups  *stats.Reader
	ProcRoot string // "/proc"
	SysRoot  string // "/sys"
}

// Container is what the server knows of a container.
type Container struct {
	Owner Owner
	// CgroupPath is the container's cgroup (relative to each hierarchy);
	// "" when it does not run, then only the filesystem and spec-less
	// series that need no cgroup are given.
	CgroupPath string
	// Pid is the container's init process on the host (0 if unknown).
	Pid       int
	StartedAt time.Time
	// Layer is the writable layer's usage; nil when unknown.
	Layer *Layer
}

// Layer is the writable layer: the bytes it holds and a path on the
// filesystem holding it.
type Layer struct {
	UsedBytes  uint64
	Mountpoint string
}

// Container reads and converts one container's metrics. What cannot be
// read is left out and reported in errs (for a debug log): a container
// may exit between the listing and the read.
func (c *Collector) Container(in Container) (out []*runtimeapi.Metric, errs []error) {
	now := time.Now()
	s := newSeries(in.Owner, now.UnixNano())
	s.add(lastSeen, uint64(now.Unix()))
	if !in.StartedAt.IsZero() {
		s.add(startTime, uint64(in.StartedAt.Unix()))
	}
	if in.CgroupPath != "" && c.Cgroups != nil {
		d, err := c.Cgroups.ReadDetail(in.CgroupPath)
		if err != nil {
			if !errors.Is(err, stats.ErrNoCgroup) {
				errs = append(errs, fmt.Errorf("cgroup %s: %w", in.CgroupPath, err))
			}
		} else {
			s.ts = d.Time.UnixNano()
			addCgroup(s, c.SysRoot, d, stats.ReadProcessFiles(c.ProcRoot, d.Pids.Pids))
		}
	}
	if in.Pid > 0 {
		if v, ok, err := stats.SoftOpenFilesLimit(c.ProcRoot, in.Pid); err != nil {
			errs = append(errs, fmt.Errorf("open files limit: %w", err))
		} else {
			// Unlimited is RLIM_INFINITY, all ones: -1 read as signed,
			// which is how cAdvisor shows it.
			lim := uint64(1<<64 - 1)
			if ok {
				lim = v
			}
			s.add(ulimitsSoft, lim, "max_open_files")
		}
	}
	if in.Layer != nil {
		fs, err := stats.ReadFilesystem(c.SysRoot, in.Layer.Mountpoint)
		if err != nil {
			errs = append(errs, fmt.Errorf("writable layer filesystem: %w", err))
		} else {
			addFilesystem(s, in.Layer.UsedBytes, fs)
		}
	}
	return s.out, errs
}

// Pod converts the pod's network counters (its containers share them).
func Pod(o Owner, net *stats.NetworkSample) []*runtimeapi.Metric {
	s := newSeries(o, net.Time.UnixNano())
	for _, i := range net.Interfaces {
		s.add(netRxBytes, i.RxBytes, i.Name)
		s.add(netRxPackets, i.RxPackets, i.Name)
		s.add(netRxDropped, i.RxDropped, i.Name)
		s.add(netRxErrors, i.RxErrors, i.Name)
		s.add(netTxBytes, i.TxBytes, i.Name)
		s.add(netTxPackets, i.TxPackets, i.Name)
		s.add(netTxDropped, i.TxDropped, i.Name)
		s.add(netTxErrors, i.TxErrors, i.Name)
	}
	return s.out
}

const (
	nsPerSec = uint64(time.Second)
	usPerSec = uint64(time.Second / time.Microsecond)
)

func addCgroup(s *series, sysRoot string, d *stats.Detail, files stats.ProcessFiles) {
	// cAdvisor's default (per-CPU off) is one "total" series.
	s.add(cpuUsage, d.CPU.Usage/nsPerSec, "total")
	s.add(cpuUser, d.CPU.User/nsPerSec)
	s.add(cpuSystem, d.CPU.System/nsPerSec)
	s.add(cpuCfsPeriods, d.CPU.Periods)
	s.add(cpuCfsThrottled, d.CPU.ThrottledPeriods)
	s.add(cpuCfsThrottledSecs, d.CPU.ThrottledNanos/nsPerSec)

	m := d.Memory
	s.add(memUsage, m.Usage)
	if m.HasMaxUsage {
		s.add(memMaxUsage, m.MaxUsage)
	}
	s.add(memWorkingSet, m.WorkingSet)
	s.add(memRSS, m.RSS)
	s.add(memCache, m.Cache)
	s.add(memMapped, m.MappedFile)
	if m.HasSwap {
		s.add(memSwap, m.Swap)
	}
	s.add(memKernel, m.KernelUsage)
	s.add(memFailcnt, m.Failcnt)
	s.add(memFailures, m.PgFault, "pgfault", "container")
	s.add(memFailures, m.HierarchyPgFault, "pgfault", "hierarchy")
	s.add(memFailures, m.PgMajFault, "pgmajfault", "container")
	s.add(memFailures, m.HierarchyPgMajFault, "pgmajfault", "hierarchy")
	s.add(oomEvents, m.OOMKills)

	for _, h := range d.Hugetlb {
		s.add(hugetlbUsage, h.Usage, h.PageSize)
		if h.HasMaxUsage {
			s.add(hugetlbMaxUsage, h.MaxUsage, h.PageSize)
		}
	}

	for _, io := range d.IO {
		dev := stats.DeviceName(sysRoot, io.Major, io.Minor)
		maj, min := strconv.FormatUint(io.Major, 10), strconv.FormatUint(io.Minor, 10)
		s.add(fsReadsBytes, io.ReadBytes, dev)
		s.add(fsReads, io.Reads, dev)
		s.add(fsWritesBytes, io.WriteBytes, dev)
		s.add(fsWrites, io.Writes, dev)
		s.add(blkioUsage, io.ReadBytes, dev, maj, min, "Read")
		s.add(blkioUsage, io.WriteBytes, dev, maj, min, "Write")
	}

	s.add(processes, uint64(len(d.Pids.Pids)))
	s.add(threads, d.Pids.Threads)
	s.add(threadsMax, d.Pids.ThreadsMax)
	s.add(fileDescriptors, files.FileDescriptors)
	s.add(sockets, files.Sockets)

	sp := d.Spec
	s.add(specCPUShares, sp.CPUShares)
	s.add(specCPUPeriod, sp.CPUPeriod)
	if sp.CPUQuota > 0 { // cAdvisor leaves an unlimited quota out
		s.add(specCPUQuota, sp.CPUQuota)
	}
	s.add(specMemoryLimit, sp.MemoryLimit)
	s.add(specMemoryReservation, sp.MemoryReservation)
	s.add(specMemorySwapLimit, sp.MemorySwapLimit)

	if p := d.Pressure; p != nil {
		s.add(psiCPUWaiting, p.CPU.Some/usPerSec)
		s.add(psiCPUStalled, p.CPU.Full/usPerSec)
		s.add(psiMemWaiting, p.Memory.Some/usPerSec)
		s.add(psiMemStalled, p.Memory.Full/usPerSec)
		s.add(psiIOWaiting, p.IO.Some/usPerSec)
		s.add(psiIOStalled, p.IO.Full/usPerSec)
	}
}

func addFilesystem(s *series, used uint64, fs *stats.Filesystem) {
	s.add(fsUsage, used, fs.Device)
	s.add(fsLimit, fs.LimitBytes, fs.Device)
	s.add(fsInodesTotal, fs.InodesTotal, fs.Device)
	s.add(fsInodesFree, fs.InodesFree, fs.Device)
}
