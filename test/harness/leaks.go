package harness

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// HostState is what a test could leak on the host: pinned netns files,
// mounts, veth links, IPAM reservations and helper/monitor processes.
type HostState struct {
	Netns     map[string]bool
	Mounts    map[string]bool
	Veths     map[string]bool
	Processes map[string]bool
	// Cgroups are the cgroup directories (any hierarchy) with "floe" in
	// their path: container cgroups (floe-<id>) and test pod parents.
	Cgroups map[string]bool
	// TempDirs are floe's per-exec scratch dirs left in the temp dir.
	TempDirs map[string]bool
	ipamDirs []string
}

// Snapshot records the host state now. ipamDirs are the host-local data
// dirs whose reservations must be gone at the end.
func Snapshot(t testing.TB, ipamDirs ...string) *HostState {
	t.Helper()
	s := &HostState{
		Netns:     set(readDirNames("/run/netns")),
		Mounts:    set(mountPoints(t)),
		Veths:     set(vethNames(t)),
		Processes: set(watchedProcesses()),
		Cgroups:   set(floeCgroups()),
		TempDirs:  set(floeTempDirs()),
		ipamDirs:  ipamDirs,
	}
	return s
}

// CheckLeaks snapshots now and, when the test ends (after the daemons it
// starts later have been cleaned up), fails the test for anything new.
func CheckLeaks(t testing.TB, ipamDirs ...string) {
	t.Helper()
	before := Snapshot(t, ipamDirs...)
	t.Cleanup(func() { before.AssertNoLeaks(t) })
}

// AssertNoLeaks compares the host with the snapshot.
func (s *HostState) AssertNoLeaks(t testing.TB, extraIPAMDirs ...string) {
	t.Helper()
	for _, kind := range SortedKinds(s.Leaks(t, extraIPAMDirs...)) {
		t.Errorf("leaked %s", kind)
	}
}

// Kind names of the host leaks, as Leaks reports them.
const (
	LeakNetns     = "netns files in /run/netns"
	LeakMounts    = "mounts"
	LeakVeths     = "veth links"
	LeakProcesses = "processes"
	LeakCgroups   = "cgroups"
	LeakIPAM      = "IPAM reservations"
	LeakTempDirs  = "temp dirs"
)

// Leaks compares the host with the snapshot and returns what is new, by
// kind (only kinds with something in them).
func (s *HostState) Leaks(t testing.TB, extraIPAMDirs ...string) map[string][]string {
	t.Helper()
	now := Snapshot(t)
	out := map[string][]string{}
	report := func(kind string, before, after map[string]bool) {
		if extra := newItems(before, after); len(extra) > 0 {
			out[kind] = extra
		}
	}
	report(LeakNetns, s.Netns, now.Netns)
	report(LeakMounts, s.Mounts, now.Mounts)
	report(LeakVeths, s.Veths, now.Veths)
	report(LeakProcesses, s.Processes, now.Processes)
	report(LeakCgroups, s.Cgroups, now.Cgroups)
	report(LeakTempDirs, s.TempDirs, now.TempDirs)
	for _, dir := range append(append([]string{}, s.ipamDirs...), extraIPAMDirs...) {
		for _, r := range ipamReservations(dir) {
			out[LeakIPAM] = append(out[LeakIPAM], filepath.Join(dir, r))
		}
	}
	return out
}

// SortedKinds formats leaks as "kind: item, item" lines in kind order.
func SortedKinds(leaks map[string][]string) []string {
	var out []string
	for kind, items := range leaks {
		out = append(out, fmt.Sprintf("%s: %s", kind, strings.Join(items, ", ")))
	}
	sort.Strings(out)
	return out
}

func newItems(before, after map[string]bool) []string {
	var extra []string
	for k := range after {
		if !before[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	return extra
}

func set(items []string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, i := range items {
		m[i] = true
	}
	return m
}

func readDirNames(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func mountPoints(t testing.TB) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// /run/netns itself becomes a shared bind mount the first time a
		// netns is pinned (as with 'ip netns add'); that is host setup,
		// not a per-pod leak.
		if len(fields) > 4 && fields[4] != "/run/netns" {
			out = append(out, fields[4])
		}
	}
	return out
}

func vethNames(t testing.TB) []string {
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatalf("list links: %v", err)
	}
	var out []string
	for _, l := range links {
		if l.Type() == "veth" {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

// watchedProcesses lists processes a runtime could leak: its namespace
// helper, conmon monitors, runc, pod init processes (floe-pod-init, or floe
// re-executed as __floe-pod-init), CNI plugins, and the test registries of
// test/fixtures.
func watchedProcesses() []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		base := filepath.Base(args[0])
		joined := strings.Join(args, " ")
		cni := strings.HasPrefix(args[0], "/usr/lib/cni/") || strings.HasPrefix(args[0], "/opt/cni/bin/")
		if base == "conmon" || base == "runc" || base == "docker-registry" || base == "floe-pod-init" || cni || strings.Contains(joined, "__floe-") {
			out = append(out, fmt.Sprintf("%s(%s)", pid, joined))
		}
	}
	return out
}

// ipamReservations lists host-local reservation files (one per IP).
func ipamReservations(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		name := d.Name()
		if name == "lock" || strings.HasPrefix(name, "last_reserved_ip") {
			return nil
		}
		out = append(out, name)
		return nil
	})
	return out
}

// floeCgroups lists cgroup directories below /sys/fs/cgroup whose path
// mentions floe. The tree is small on a node (a few hundred dirs), so a
// full walk is cheap.
func floeCgroups() []string {
	var out []string
	filepath.WalkDir("/sys/fs/cgroup", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.Contains(strings.TrimPrefix(path, "/sys/fs/cgroup"), "floe") {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// floeTempDirs lists the temp dir's entries named like floe's scratch
// dirs.
func floeTempDirs() []string {
	var out []string
	for _, name := range readDirNames(os.TempDir()) {
		if strings.HasPrefix(name, "floe-exec-") {
			out = append(out, filepath.Join(os.TempDir(), name))
		}
	}
	return out
}
