package cgroups

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/floe-cri/floe/internal/errdefs"
)

func TestExpandSlice(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{in: "kubepods-burstable-pod123.slice", want: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod123.slice"},
		{in: "kubepods.slice", want: "/kubepods.slice"},
		{in: "-.slice", want: "/"},
		{in: "kubepods-pod1_2_3.slice", want: "/kubepods.slice/kubepods-pod1_2_3.slice"},
		{in: "kubepods", bad: true},
		{in: ".slice", bad: true},
		{in: "a--b.slice", bad: true},
		{in: "-a.slice", bad: true},
		{in: "a-.slice", bad: true},
		{in: "../x.slice", bad: true},
		{in: "a/b.slice", bad: true},
		{in: "a-..-b.slice", bad: true},
		{in: "a b.slice", bad: true},
	} {
		got, err := ExpandSlice(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ExpandSlice(%q) = %q, want error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ExpandSlice(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParentPath(t *testing.T) {
	for _, tc := range []struct {
		driver, in, want, errHas string
	}{
		{driver: DriverCgroupfs, in: "/kubepods/burstable/pod1", want: "/kubepods/burstable/pod1"},
		{driver: DriverCgroupfs, in: "/kubepods/", want: "/kubepods"},
		{driver: DriverCgroupfs, in: "", want: "/"},
		{driver: DriverCgroupfs, in: "kubepods-besteffort-pod9.slice", want: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod9.slice"},
		{driver: DriverCgroupfs, in: "kubepods/x", errHas: "absolute"},
		{driver: DriverCgroupfs, in: "/a/../../b", errHas: "clean"},
		{driver: DriverSystemd, in: "kubepods-pod1.slice", want: "kubepods-pod1.slice"},
		{driver: DriverSystemd, in: "", want: "-.slice"},
		{driver: DriverSystemd, in: "/kubepods/pod1", errHas: "cgroupDriver"},
		{driver: DriverSystemd, in: "kubepods", errHas: ".slice"},
	} {
		got, err := ParentPath(tc.driver, tc.in)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("ParentPath(%s, %q) = %q, %v; want error containing %q", tc.driver, tc.in, got, err, tc.errHas)
			} else if errdefs.KindOf(err) != errdefs.KindInvalidArgument {
				t.Errorf("ParentPath(%s, %q): error kind %v, want InvalidArgument", tc.driver, tc.in, errdefs.KindOf(err))
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParentPath(%s, %q) = %q, %v; want %q", tc.driver, tc.in, got, err, tc.want)
		}
	}
	// Both settings are named so the operator knows what to align.
	_, err := ParentPath(DriverSystemd, "/kubepods")
	if !strings.Contains(err.Error(), "cgroup_manager") {
		t.Errorf("error does not name cgroup_manager: %v", err)
	}
}

func TestContainerPath(t *testing.T) {
	got, err := ContainerPath(DriverCgroupfs, "/kubepods/pod1", "floe", "abc")
	if err != nil || got != "/kubepods/pod1/floe-abc" {
		t.Errorf("cgroupfs: %q, %v", got, err)
	}
	got, err = ContainerPath(DriverCgroupfs, "kubepods-pod1.slice", "floe", "abc")
	if err != nil || got != "/kubepods.slice/kubepods-pod1.slice/floe-abc" {
		t.Errorf("cgroupfs from slice: %q, %v", got, err)
	}
	got, err = ContainerPath(DriverSystemd, "kubepods-pod1.slice", "floe", "abc")
	if err != nil || got != "kubepods-pod1.slice:floe:abc" {
		t.Errorf("systemd: %q, %v", got, err)
	}
	if _, err := ContainerPath(DriverSystemd, "/kubepods", "floe", "abc"); err == nil {
		t.Error("systemd driver accepted a path parent")
	}
	if _, err := ContainerPath(DriverCgroupfs, "/x", "floe", "a/b"); err == nil {
		t.Error("id with a slash accepted")
	}
}

func TestCheckDriver(t *testing.T) {
	dir := t.TempDir()
	oldDir, oldSock := systemdRuntimeDir, systemdPrivateSocket
	t.Cleanup(func() { systemdRuntimeDir, systemdPrivateSocket = oldDir, oldSock })
	systemdRuntimeDir = filepath.Join(dir, "missing")
	systemdPrivateSocket = filepath.Join(dir, "private")

	if err := CheckDriver(DriverCgroupfs); err != nil {
		t.Errorf("cgroupfs: %v", err)
	}
	err := CheckDriver(DriverSystemd)
	if err == nil || !strings.Contains(err.Error(), "cgroupDriver") || !strings.Contains(err.Error(), "cgroup_manager") {
		t.Errorf("systemd without systemd: %v", err)
	}
	// The directory alone is not enough: nothing answers on the socket.
	systemdRuntimeDir = dir
	if err := CheckDriver(DriverSystemd); err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Errorf("systemd dir without socket: %v", err)
	}
	if err := CheckDriver("bogus"); err == nil {
		t.Error("unknown driver accepted")
	}
}
