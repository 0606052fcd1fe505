package cgroups

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestRelPathAndPodPath(t *testing.T) {
	for in, want := range map[string]string{
		"/kubepods/pod1/floe-abc":      "/kubepods/pod1/floe-abc",
		"kubepods-pod1.slice:floe:abc": "/kubepods.slice/kubepods-pod1.slice/floe-abc.scope",
	} {
		if got, err := RelPath(in); err != nil || got != want {
			t.Errorf("RelPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "nocolons", "bad:floe:abc"} {
		if _, err := RelPath(bad); err == nil {
			t.Errorf("RelPath(%q) accepted", bad)
		}
	}
	if got := PodPath(DriverSystemd, "kubepods-pod1.slice"); got != "/kubepods.slice/kubepods-pod1.slice" {
		t.Errorf("systemd pod path %q", got)
	}
	if got := PodPath(DriverCgroupfs, "/kubepods/pod1"); got != "/kubepods/pod1" {
		t.Errorf("cgroupfs pod path %q", got)
	}
	if got := PodPath(DriverCgroupfs, ""); got != "" {
		t.Errorf("no parent: %q", got)
	}
}

func TestProcsFilesOncePerHierarchyWhereTheCgroupExists(t *testing.T) {
	d := t.TempDir()
	for _, dir := range []string{"cpu,cpuacct/pod", "memory/pod", "pids"} {
		if err := os.MkdirAll(filepath.Join(d, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, dir, "cgroup.procs"), nil, 0o644)
	}
	v1 := &Support{Mode: ModeHybrid, Mounts: map[string]string{
		"cpu": filepath.Join(d, "cpu,cpuacct"), "cpuacct": filepath.Join(d, "cpu,cpuacct"),
		"memory": filepath.Join(d, "memory"), "pids": filepath.Join(d, "pids"),
	}}
	want := []string{filepath.Join(d, "cpu,cpuacct/pod/cgroup.procs"), filepath.Join(d, "memory/pod/cgroup.procs")}
	if got := v1.ProcsFiles("/pod"); !slices.Equal(got, want) {
		t.Errorf("v1: %v, want %v", got, want)
	}
	v2 := &Support{Mode: ModeV2, Root: filepath.Join(d, "memory")}
	if got := v2.ProcsFiles("/pod"); !slices.Equal(got, want[1:]) {
		t.Errorf("v2: %v, want %v", got, want[1:])
	}
	if got := v1.ProcsFiles(""); got != nil {
		t.Errorf("no cgroup: %v", got)
	}
}
