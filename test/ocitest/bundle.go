package ocitest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floe-cri/floe/internal/ocispec"
	"github.com/floe-cri/floe/test/needs"
)

// CgroupRoot is the cgroupfs parent every test container is put under, so
// leftovers are easy to spot and remove.
const CgroupRoot = "/floe-test"

// Bundle builds a busybox rootfs and a bundle for container id: the spec
// comes from ocispec.Build on a Container the caller adjusts with mutate
// (Rootfs, ID and CgroupsPath are preset). The test's cleanup force-deletes
// the container from runc and removes its cgroups and the bundle.
func Bundle(t testing.TB, id string, mutate func(*ocispec.Container)) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "floe-bundle-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ForceDelete(id)
		RemoveCgroup(CgroupRoot + "/" + id)
		os.RemoveAll(dir)
	})
	root := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	needs.File(t, BusyboxPath, "busybox-static ("+BusyboxPath+")")
	if err := Build(root); err != nil {
		t.Fatal(err)
	}
	c := &ocispec.Container{
		ID:          id,
		Rootfs:      root,
		Image:       ocispec.ImageConfig{Cmd: []string{"/bin/sh"}},
		CgroupsPath: CgroupRoot + "/" + id,
		Seccomp:     ocispec.Seccomp{Kind: ocispec.SeccompRuntimeDefault},
	}
	if mutate != nil {
		mutate(c)
	}
	spec, err := ocispec.Build(c, ocispec.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.MarshalIndent(spec, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ForceDelete removes a container from runc's default root, if present.
func ForceDelete(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	exec.CommandContext(ctx, "runc", "delete", "--force", id).Run()
}

// RemoveCgroup removes path and then its empty parents up to the test
// root, under every cgroup v1 controller (and the v2 tree).
func RemoveCgroup(path string) {
	ctrls, _ := os.ReadDir("/sys/fs/cgroup")
	for _, c := range ctrls {
		base := filepath.Join("/sys/fs/cgroup", c.Name())
		for p := path; p != "/" && p != "." && strings.HasPrefix(p, CgroupRoot); p = filepath.Dir(p) {
			dir := filepath.Join(base, p)
			// A cgroup whose last process just died may be busy briefly;
			// a parent still used by another test stays.
			tries := 1
			if p == path {
				tries = 50
			}
			for i := 0; i < tries; i++ {
				err := os.Remove(dir)
				if err == nil || os.IsNotExist(err) {
					break
				}
				if !strings.Contains(err.Error(), "busy") {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// CgroupFile reads one file of a container's cgroup under a v1 controller.
func CgroupFile(t testing.TB, controller, cgroupsPath, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, cgroupsPath, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// LeftoverCgroups removes the (empty) test cgroup root under every
// controller and returns the container cgroups still under it: a
// container's cleanup that did not happen.
func LeftoverCgroups() []string {
	var left []string
	ctrls, _ := os.ReadDir("/sys/fs/cgroup")
	for _, c := range ctrls {
		root := filepath.Join("/sys/fs/cgroup", c.Name(), CgroupRoot)
		entries, err := os.ReadDir(root)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() {
				left = append(left, filepath.Join(root, e.Name()))
			}
		}
		os.Remove(root)
	}
	return left
}

// RuncContainers lists the ids runc (default root) knows whose id
// contains s.
func RuncContainers(s string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "runc", "list", "-q").Output()
	if err != nil {
		return nil
	}
	var ids []string
	for _, id := range strings.Fields(string(out)) {
		if strings.Contains(id, s) {
			ids = append(ids, id)
		}
	}
	return ids
}
