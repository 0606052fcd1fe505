package ocispec

import (
	"fmt"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/lsm"
)

// LSM is what the container runs under in the host's Linux security
// modules. Empty fields ask for nothing.
type LSM struct {
	// AppArmorProfile is the name of a loaded AppArmor profile runc
	// switches the container's process to.
	AppArmorProfile string
	// SELinuxLabel is the process label; MountLabel labels the
	// container's own mounts (runc passes it as context= to tmpfs,
	// mqueue...) and the host paths of mounts asking for a relabel.
	SELinuxLabel string
	MountLabel   string
}

// relabelRefused are host directories floe never relabels, whatever a
// mount asks for: giving them a container's label would take them away
// from the host's own services (CRI-O refuses the same kind of list).
var relabelRefused = []string{
	"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt",
	"/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
}

// applyLSM puts c.LSM into spec and relabels the host paths of mounts
// with SELinuxRelabel set. Without a mount label (no SELinux on the host,
// or no label asked for) there is no label to give them, as in
// containerd, so they are left alone.
func applyLSM(spec *specs.Spec, c *Container, relabel func(path, label string) error) error {
	spec.Process.ApparmorProfile = c.LSM.AppArmorProfile
	spec.Process.SelinuxLabel = c.LSM.SELinuxLabel
	spec.Linux.MountLabel = c.LSM.MountLabel
	if c.LSM.MountLabel == "" {
		return nil
	}
	if relabel == nil {
		relabel = lsm.Relabel
	}
	for i, m := range c.Mounts {
		if !m.SELinuxRelabel || m.HostPath == "" {
			continue
		}
		path, err := filepath.EvalSymlinks(m.HostPath)
		if err != nil {
			return fmt.Errorf("mounts[%d]: relabel %s: %w", i, m.HostPath, err)
		}
		if slices.Contains(relabelRefused, filepath.Clean(path)) {
			return errdefs.InvalidArgument(fmt.Sprintf("mounts[%d].selinux_relabel", i), "floe does not relabel the host directory %s", path)
		}
		if err := relabel(path, c.LSM.MountLabel); err != nil {
			return fmt.Errorf("mounts[%d]: %w", i, err)
		}
	}
	return nil
}
