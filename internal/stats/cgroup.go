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
	Processes       uint64
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
// kubelet's CgroupParent is).
func (r *Reader) Read(path string) (*CgroupSample, error) {
	s := &CgroupSample{Time: time.Now()}
	var err error
	if r.v2 {
		err = r.readV2(path, s)
	} else {
		err = r.readV1(path, s)
	}
	if err != nil {
		return nil, err
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

func (r *Reader) readV1(path string, s *CgroupSample) error {
	cpuDir := filepath.Join(r.root, "cpuacct", path)
	if _, err := os.Stat(cpuDir); err != nil {
		// Some hosts co-mount cpu and cpuacct.
		cpuDir = filepath.Join(r.root, "cpu,cpuacct", path)
	}
	usage, err := readUint(filepath.Join(cpuDir, "cpuacct.usage"))
	if err != nil {
		return err
	}
	s.CPUUsageNanos = usage
	memDir := filepath.Join(r.root, "memory", path)
	if s.MemoryUsage, err = readUint(filepath.Join(memDir, "memory.usage_in_bytes")); err != nil {
		return err
	}
	stat, err := readKV(filepath.Join(memDir, "memory.stat"))
	if err != nil {
		return err
	}
	s.RSS = stat["total_rss"]
	s.PageFaults = stat["total_pgfault"]
	s.MajorPageFaults = stat["total_pgmajfault"]
	s.WorkingSet = subFloor(s.MemoryUsage, stat["total_inactive_file"])
	if limit, err := readUint(filepath.Join(memDir, "memory.limit_in_bytes")); err == nil && limit < 1<<62 {
		s.MemoryLimit = limit
	}
	if n, err := readUint(filepath.Join(r.root, "pids", path, "pids.current")); err == nil {
		s.Processes = n
	}
	return nil
}

func (r *Reader) readV2(path string, s *CgroupSample) error {
	dir := filepath.Join(r.root, path)
	cpu, err := readKV(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return err
	}
	s.CPUUsageNanos = cpu["usage_usec"] * 1000
	if s.MemoryUsage, err = readUint(filepath.Join(dir, "memory.current")); err != nil {
		return err
	}
	stat, err := readKV(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return err
	}
	s.RSS = stat["anon"]
	s.PageFaults = stat["pgfault"]
	s.MajorPageFaults = stat["pgmajfault"]
	s.WorkingSet = subFloor(s.MemoryUsage, stat["inactive_file"])
	if limit, err := readUint(filepath.Join(dir, "memory.max")); err == nil {
		s.MemoryLimit = limit
	}
	if n, err := readUint(filepath.Join(dir, "pids.current")); err == nil {
		s.Processes = n
	}
	return nil
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
