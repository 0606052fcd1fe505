package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// PodPath is where a pod's cgroup parent (the kubelet's CgroupParent)
// lives relative to each hierarchy's root, with a systemd slice name
// expanded; "" when the pod has no parent or it cannot be read.
func PodPath(driver, parent string) string {
	if parent == "" {
		return ""
	}
	p, err := ParentPath(driver, parent)
	if err != nil {
		return ""
	}
	if !strings.HasPrefix(p, "/") { // a systemd slice name
		if p, err = ExpandSlice(p); err != nil {
			return ""
		}
	}
	return p
}

// RelPath is the cgroup an OCI cgroupsPath names, relative to each
// hierarchy's root: an absolute path as it is, the systemd driver's
// "slice:prefix:name" as the scope <expanded slice>/<prefix>-<name>.scope.
func RelPath(cgroupsPath string) (string, error) {
	if cgroupsPath == "" {
		return "", fmt.Errorf("no cgroupsPath")
	}
	if strings.HasPrefix(cgroupsPath, "/") {
		return cgroupsPath, nil
	}
	parts := strings.SplitN(cgroupsPath, ":", 3)
	if len(parts) != 3 {
		return "", fmt.Errorf("unexpected cgroupsPath %q", cgroupsPath)
	}
	dir, err := ExpandSlice(parts[0])
	if err != nil {
		return "", err
	}
	return dir + "/" + parts[1] + "-" + parts[2] + ".scope", nil
}

// processControllers are the v1 hierarchies a process placed by hand
// (the pod init) joins, so it is accounted where the pod's containers are.
var processControllers = []string{"cpu", "cpuacct", "memory", "pids", "blkio", "cpuset", "devices", "freezer"}

// ProcsFiles are the cgroup.procs files of the cgroup at rel (relative
// to each hierarchy's root) in every hierarchy where it exists: the one
// unified tree on v2, each process controller's on v1 and hybrid hosts.
func (s *Support) ProcsFiles(rel string) []string {
	if rel == "" {
		return nil
	}
	var dirs []string
	if s.Mode == ModeV2 {
		dirs = []string{s.Root}
	} else {
		for _, c := range processControllers {
			if m := s.Mounts[c]; m != "" && !slices.Contains(dirs, m) {
				dirs = append(dirs, m)
			}
		}
	}
	var out []string
	for _, d := range dirs {
		f := filepath.Join(d, rel, "cgroup.procs")
		if _, err := os.Stat(f); err == nil {
			out = append(out, f)
		}
	}
	return out
}
