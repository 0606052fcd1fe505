package container

import (
	"fmt"
	"strings"

	"github.com/floe-cri/floe/internal/cgroups"
)

// CgroupPath is the container's cgroup relative to each hierarchy's root
// (what stats.Reader reads), from the cgroupsPath in its bundle.
func (m *Manager) CgroupPath(c *Container) (string, error) {
	m.cgroupMu.Lock()
	p, ok := m.cgroupPaths[c.ID]
	m.cgroupMu.Unlock()
	if ok {
		return p, nil
	}
	s, err := readBundle(c.Bundle)
	if err != nil {
		return "", err
	}
	if s.Linux == nil || s.Linux.CgroupsPath == "" {
		return "", fmt.Errorf("container %s: bundle has no cgroupsPath", c.ID)
	}
	p = s.Linux.CgroupsPath
	if !strings.HasPrefix(p, "/") {
		// systemd driver: "slice:prefix:name" is the scope
		// <expanded slice>/<prefix>-<name>.scope.
		parts := strings.SplitN(p, ":", 3)
		if len(parts) != 3 {
			return "", fmt.Errorf("container %s: unexpected cgroupsPath %q", c.ID, p)
		}
		dir, err := cgroups.ExpandSlice(parts[0])
		if err != nil {
			return "", fmt.Errorf("container %s: %w", c.ID, err)
		}
		p = dir + "/" + parts[1] + "-" + parts[2] + ".scope"
	}
	m.cgroupMu.Lock()
	if m.cgroupPaths == nil {
		m.cgroupPaths = map[string]string{}
	}
	m.cgroupPaths[c.ID] = p
	m.cgroupMu.Unlock()
	return p, nil
}

// forgetCgroup drops a removed container's cached cgroup path.
func (m *Manager) forgetCgroup(id string) {
	m.cgroupMu.Lock()
	delete(m.cgroupPaths, id)
	m.cgroupMu.Unlock()
}
