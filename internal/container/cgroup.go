package container

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/cgroups"
)

// CgroupPath is the container's cgroup relative to each hierarchy's root
// (what stats.Reader reads).
func (m *Manager) CgroupPath(c *Container) (string, error) {
	p, err := cgroups.RelPath(c.CgroupsPath)
	if err != nil {
		return "", fmt.Errorf("container %s: %w", c.ID, err)
	}
	return p, nil
}

// recordSpecFacts keeps what others need of the built spec in the record.
func (c *Container) recordSpecFacts(s *specs.Spec) {
	if s.Process != nil {
		u := s.Process.User
		c.User = &u
	}
	if s.Linux != nil {
		c.CgroupsPath = s.Linux.CgroupsPath
	}
}

// backfillSpecFacts reads the facts of a container recorded before they
// were kept in the record, once, from its bundle.
func (m *Manager) backfillSpecFacts(c *Container) {
	if c.User != nil || c.CgroupsPath != "" || c.State == StateCreating {
		return
	}
	s, err := readBundle(c.Bundle)
	if err != nil {
		m.log.Warn("container record lacks its spec facts and the bundle is unreadable", "container", c.ID, "err", err)
		return
	}
	if _, err := m.update(c.ID, func(r *Container) error {
		r.recordSpecFacts(s)
		return nil
	}); err != nil {
		m.log.Error("record spec facts of an older container record", "container", c.ID, "err", err)
	}
}
