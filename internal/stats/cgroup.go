// Package stats reads resource usage the way the kubelet's summary API
// wants it: CPU, memory and process counts from a cgroup (v1 or v2), and
// network counters from a pod's network namespace through netlink. CPU
// usage in nanocores is derived from the previous sample of the same
// cgroup, as cAdvisor does.
package stats

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// CgroupSample is one reading of a cgroup.
type CgroupSample struct {
	Time            time.Time
	CPUUsageNanos   uint64
	NanoCores       *uint64 // nil on the first sample of a cgroup
	MemoryUsage     uint64
	WorkingSet      uint64
	RSS             uint64
	PageFaults      uint64
	MajorPageFaults uint64
	MemoryLimit     uint64 // 0 when unlimited
	Processes       uint64 // tasks (pids.current), as cAdvisor counts them
}

// Reader reads cgroups under a root (/sys/fs/cgroup) and remembers the last
// CPU sample of each cgroup for the nanocores rate.
type Reader struct {
	root string
	v2   bool

	mu     sync.Mutex
	last   map[string]cpuPoint
	pruned time.Time // last sweep of stale samples
}

type cpuPoint struct {
	at    time.Time
	usage uint64
}

// NewReader detects the cgroup version under root.
func NewReader(root string) *Reader {
	_, err := os.Stat(filepath.Join(root, "cgroup.controllers"))
	return &Reader{root: root, v2: err == nil, last: map[string]cpuPoint{}}
}

// ErrNoCgroup is returned when the cgroup does not exist (yet).
var ErrNoCgroup = errors.New("cgroup does not exist")

// Read samples the cgroup at path (relative to each hierarchy, as the
// kubelet's CgroupParent is): the part of ReadDetail the CRI stats calls
// carry, plus the CPU rate since the previous sample.
func (r *Reader) Read(path string) (*CgroupSample, error) {
	d, err := r.ReadDetail(path)
	if err != nil {
		return nil, err
	}
	s := &CgroupSample{
		Time: d.Time, CPUUsageNanos: d.CPU.Usage,
		MemoryUsage: d.Memory.Usage, WorkingSet: d.Memory.WorkingSet, RSS: d.Memory.RSS,
		PageFaults: d.Memory.HierarchyPgFault, MajorPageFaults: d.Memory.HierarchyPgMajFault,
		MemoryLimit: d.Spec.MemoryLimit, Processes: d.Pids.Threads,
	}
	r.mu.Lock()
	if prev, ok := r.last[path]; ok && s.Time.After(prev.at) && s.CPUUsageNanos >= prev.usage {
		rate := uint64(float64(s.CPUUsageNanos-prev.usage) / s.Time.Sub(prev.at).Seconds())
		s.NanoCores = &rate
	}
	r.last[path] = cpuPoint{s.Time, s.CPUUsageNanos}
	// Containers come and go: drop samples nobody asked for in a while,
	// so removed cgroups do not pile up.
	if s.Time.Sub(r.pruned) > staleSample {
		for p, pt := range r.last {
			if s.Time.Sub(pt.at) > staleSample {
				delete(r.last, p)
			}
		}
		r.pruned = s.Time
	}
	r.mu.Unlock()
	return s, nil
}

// staleSample is how long an unread cgroup's last CPU sample is kept.
const staleSample = 10 * time.Minute

// Forget drops the remembered CPU sample of a removed cgroup.
func (r *Reader) Forget(path string) {
	r.mu.Lock()
	delete(r.last, path)
	r.mu.Unlock()
}

func subFloor(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%s: %w", path, ErrNoCgroup)
	}
	if err != nil {
		return 0, err
	}
	v := strings.TrimSpace(string(b))
	if v == "max" {
		return 0, fmt.Errorf("%s: unlimited", path)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return n, nil
}

// readKV parses "key value" lines (memory.stat, cpu.stat).
func readKV(path string) (map[string]uint64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoCgroup)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, sc.Err()
}
