package cgroups

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Mode is the cgroup layout of the host as runc's cgroupfs manager sees it.
type Mode string

// Cgroup layouts.
const (
	// ModeV1: every controller on a cgroup v1 hierarchy of its own.
	ModeV1 Mode = "v1"
	// ModeHybrid: v1 controllers plus a cgroup2 tree at <root>/unified.
	// runc's v1 manager only joins that tree: a controller bound to it
	// (hugetlb on some hosts) cannot take limits from runc.
	ModeHybrid Mode = "hybrid"
	// ModeV2: <root> itself is cgroup2 (unified).
	ModeV2 Mode = "v2"
)

// Controller names floe reasons about.
const (
	CtrlCPU     = "cpu"
	CtrlCpuset  = "cpuset"
	CtrlMemory  = "memory"
	CtrlHugetlb = "hugetlb"
	CtrlPids    = "pids"
	CtrlBlkio   = "blkio" // v1
	CtrlIO      = "io"    // v2
)

// v1Controllers are the subsystem names that can appear in the super
// options of a cgroup v1 mount; every other option (rw, name=, xattr...)
// is not a controller.
var v1Controllers = []string{
	"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb",
	"memory", "misc", "net_cls", "net_prio", "perf_event", "pids", "rdma",
}

// Support says which limits the cgroup hierarchy runc uses for containers
// can hold. It is detected once at startup; a controller mounted or
// enabled later is seen after a restart.
type Support struct {
	Mode Mode `json:"mode"`
	// Controllers can take limits from runc: on v1 and hybrid hosts the
	// v1 hierarchies that are mounted, on v2 the root's cgroup.controllers.
	Controllers []string `json:"controllers"`
	// Cgroup2Only (hybrid hosts) are controllers found only in the
	// cgroup2 tree at <root>/unified, where runc's v1 manager sets no
	// limits.
	Cgroup2Only []string `json:"cgroup2OnlyControllers,omitempty"`
	// MemorySwap: memory.memsw.limit_in_bytes (v1) or memory.swap.max
	// (v2) exists, so a memory+swap limit can be set.
	MemorySwap bool `json:"memorySwap"`
	// CPURealtime: cpu.rt_runtime_us exists (v1 with
	// CONFIG_RT_GROUP_SCHED). runc sets no real-time limits on v2.
	CPURealtime bool `json:"cpuRealtime"`
	// HugepageSizes are the huge page sizes of the kernel, in the form
	// hugetlb file names use ("2MB", "1GB").
	HugepageSizes []string `json:"hugepageSizes"`
	// Mounts maps each usable controller to where its hierarchy is
	// mounted (all to the root on v2).
	Mounts map[string]string `json:"mounts"`
	// Root is where runc looks for the hierarchies (/sys/fs/cgroup).
	Root string `json:"root"`
	// CPUs and Mems are the host's online CPUs and memory nodes in the
	// kernel's list form ("0-3"), "" when unknown: a cpuset naming others
	// is refused before runc fails writing it.
	CPUs string `json:"cpus,omitempty"`
	Mems string `json:"mems,omitempty"`
}

// Paths are the host files Detect reads; tests point them at fakes.
type Paths struct {
	Mountinfo  string // /proc/self/mountinfo
	SelfCgroup string // /proc/self/cgroup
	Root       string // /sys/fs/cgroup, where runc looks for the hierarchies
	Hugepages  string // /sys/kernel/mm/hugepages
	CPUsOnline string // /sys/devices/system/cpu/online
	MemsOnline string // /sys/devices/system/node/online
	// FSPrefix is prepended to every mount point read from Mountinfo
	// before files under it are looked at ("" on a real host).
	FSPrefix string
}

// HostPaths are the real host's.
var HostPaths = Paths{
	Mountinfo:  "/proc/self/mountinfo",
	SelfCgroup: "/proc/self/cgroup",
	Root:       "/sys/fs/cgroup",
	Hugepages:  "/sys/kernel/mm/hugepages",
	CPUsOnline: "/sys/devices/system/cpu/online",
	MemsOnline: "/sys/devices/system/node/online",
}

type cgroupMount struct {
	point  string
	fstype string
	opts   []string
}

// Detect works out the cgroup layout the way runc does: the hierarchy is
// unified when a cgroup2 filesystem is mounted at the root; otherwise each
// v1 controller lives where a "cgroup" mount lists it in its super options
// (the first such mount, as runc takes), and a cgroup2 mount at
// <root>/unified makes the host hybrid.
func Detect(p Paths) (*Support, error) {
	data, err := os.ReadFile(p.Mountinfo)
	if err != nil {
		return nil, fmt.Errorf("detect cgroups: %w", err)
	}
	mounts, err := parseMountinfo(data)
	if err != nil {
		return nil, fmt.Errorf("detect cgroups: %s: %w", p.Mountinfo, err)
	}
	root := filepath.Clean(p.Root)
	s := &Support{Mounts: map[string]string{}, Root: root}
	var unifiedAt string
	for _, m := range mounts {
		if m.fstype != "cgroup2" {
			continue
		}
		switch m.point {
		case root:
			s.Mode = ModeV2
		case filepath.Join(root, "unified"):
			unifiedAt = m.point
		}
	}
	fsPath := func(parts ...string) string {
		return filepath.Join(append([]string{p.FSPrefix}, parts...)...)
	}
	if s.Mode == ModeV2 {
		ctrls, err := readControllers(fsPath(root, "cgroup.controllers"))
		if err != nil {
			return nil, fmt.Errorf("detect cgroups: %w", err)
		}
		for _, c := range ctrls {
			s.Controllers = append(s.Controllers, c)
			s.Mounts[c] = root
		}
		if s.Has(CtrlMemory) {
			s.MemorySwap = v2HasSwap(fsPath(root), p.SelfCgroup)
		}
	} else {
		for _, m := range mounts {
			if m.fstype != "cgroup" {
				continue
			}
			for _, o := range m.opts {
				if slices.Contains(v1Controllers, o) && s.Mounts[o] == "" {
					s.Mounts[o] = m.point
					s.Controllers = append(s.Controllers, o)
				}
			}
		}
		if len(s.Controllers) == 0 && unifiedAt == "" {
			return nil, fmt.Errorf("detect cgroups: no cgroup hierarchy is mounted (looked in %s for cgroup and cgroup2 mounts)", p.Mountinfo)
		}
		s.Mode = ModeV1
		if unifiedAt != "" {
			s.Mode = ModeHybrid
			// A missing or unreadable cgroup.controllers only loses the
			// report of what is there; runc uses none of it for limits.
			if ctrls, err := readControllers(fsPath(unifiedAt, "cgroup.controllers")); err == nil {
				for _, c := range ctrls {
					if !s.Has(c) {
						s.Cgroup2Only = append(s.Cgroup2Only, c)
					}
				}
			}
		}
		if mp := s.Mounts[CtrlMemory]; mp != "" {
			s.MemorySwap = exists(fsPath(mp, "memory.memsw.limit_in_bytes"))
		}
		if mp := s.Mounts[CtrlCPU]; mp != "" {
			s.CPURealtime = exists(fsPath(mp, "cpu.rt_runtime_us"))
		}
	}
	slices.Sort(s.Controllers)
	slices.Sort(s.Cgroup2Only)
	s.HugepageSizes = hugepageSizes(p.Hugepages)
	s.CPUs, s.Mems = readList(p.CPUsOnline), readList(p.MemsOnline)
	return s, nil
}

// Has reports whether runc can set limits with controller name.
func (s *Support) Has(name string) bool {
	return s != nil && slices.Contains(s.Controllers, name)
}

// HasHugepageSize reports whether the kernel has huge pages of size
// ("2MB"). An empty size list (not readable) accepts every size.
func (s *Support) HasHugepageSize(size string) bool {
	return len(s.HugepageSizes) == 0 || slices.Contains(s.HugepageSizes, size)
}

// Summary is one line for the startup checks and `floe status`.
func (s *Support) Summary() string {
	var b strings.Builder
	switch s.Mode {
	case ModeV1:
		b.WriteString("v1")
	case ModeHybrid:
		b.WriteString("v1 hybrid (cgroup2 at unified/)")
	case ModeV2:
		b.WriteString("v2 (unified)")
	}
	fmt.Fprintf(&b, "; controllers: %s", strings.Join(s.Controllers, " "))
	if len(s.Cgroup2Only) > 0 {
		fmt.Fprintf(&b, "; only in cgroup2, no limits through runc: %s", strings.Join(s.Cgroup2Only, " "))
	}
	fmt.Fprintf(&b, "; memory swap: %s; cpu rt: %s", yesNo(s.MemorySwap), yesNo(s.CPURealtime))
	if len(s.HugepageSizes) > 0 {
		fmt.Fprintf(&b, "; huge page sizes: %s", strings.Join(s.HugepageSizes, " "))
	}
	return b.String()
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

// parseMountinfo returns the cgroup and cgroup2 mounts of a
// /proc/PID/mountinfo (proc(5)): field 5 is the mount point, and after
// the "-" separator come the filesystem type, the source and the super
// options.
func parseMountinfo(data []byte) ([]cgroupMount, error) {
	var out []cgroupMount
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(tail) < 3 {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		if tail[0] != "cgroup" && tail[0] != "cgroup2" {
			continue
		}
		out = append(out, cgroupMount{point: unescapeOctal(fields[4]), fstype: tail[0], opts: strings.Split(tail[2], ",")})
	}
	return out, sc.Err()
}

// unescapeOctal undoes the \ooo escapes the kernel writes for spaces,
// tabs, newlines and backslashes in mountinfo paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func readControllers(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

// v2HasSwap looks for memory.swap.max, which the root cgroup never has:
// in floe's own cgroup (from the "0::" line of /proc/self/cgroup), and when
// floe runs in the root, in any direct child of the root.
func v2HasSwap(root, selfCgroup string) bool {
	if b, err := os.ReadFile(selfCgroup); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if own, ok := strings.CutPrefix(line, "0::"); ok && own != "/" && own != "" {
				if exists(filepath.Join(root, own, "memory.swap.max")) {
					return true
				}
			}
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.IsDir() && exists(filepath.Join(root, e.Name(), "memory.swap.max")) {
			return true
		}
	}
	return false
}

// hugepageSizes turns /sys/kernel/mm/hugepages/hugepages-2048kB entries
// into "2MB", the unit form of the hugetlb.<size>.limit_in_bytes files.
func hugepageSizes(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		kb, ok := strings.CutPrefix(e.Name(), "hugepages-")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(kb, "kB"), 10, 64)
		if err != nil || n == 0 {
			continue
		}
		out = append(out, PageSizeName(n*1024))
	}
	slices.Sort(out)
	return out
}

// PageSizeName writes a page size in bytes the way the kernel names hugetlb
// files and the kubelet names page sizes: the largest of KB, MB, GB that
// divides it.
func PageSizeName(bytes uint64) string {
	switch {
	case bytes%(1<<30) == 0:
		return strconv.FormatUint(bytes>>30, 10) + "GB"
	case bytes%(1<<20) == 0:
		return strconv.FormatUint(bytes>>20, 10) + "MB"
	default:
		return strconv.FormatUint(bytes>>10, 10) + "KB"
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// WhyMissing explains why runc cannot set limits with controller name on
// this host, for error messages.
func (s *Support) WhyMissing(name string) string {
	if slices.Contains(s.Cgroup2Only, name) {
		return fmt.Sprintf("the %s controller is mounted only in the cgroup2 tree (unified/) of this hybrid host, where runc's cgroup v1 manager sets no limits", name)
	}
	return fmt.Sprintf("the %s controller is not available in this host's cgroup %s hierarchy", name, s.Mode)
}

// SwapFile is the file a memory+swap limit is written to in this mode.
func (s *Support) SwapFile() string {
	if s.Mode == ModeV2 {
		return "memory.swap.max"
	}
	return "memory.memsw.limit_in_bytes"
}

// readList reads a kernel list file such as cpu/online; "" when it is not
// there (a kernel without NUMA has no node/online), which skips the check.
func readList(path string) string {
	if path == "" {
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
