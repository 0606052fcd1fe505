package daemon

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"

	"github.com/floe-cri/floe/internal/cgroups"
	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/hooks"
	"github.com/floe-cri/floe/internal/ocispec"
)

// procSys is where the kernel's sysctls and fs.nr_open are read.
const procSys = "/proc/sys"

// containerDefaults holds the [containers] defaults in force; a SIGHUP
// swaps in new ones when they check out.
type containerDefaults struct {
	cur atomic.Pointer[ocispec.NodeDefaults]
	cg  *cgroups.Support
	log *slog.Logger
}

// newContainerDefaults builds the defaults of cfg; an error stops startup.
func newContainerDefaults(cfg *config.Config, cg *cgroups.Support, log *slog.Logger) (*containerDefaults, error) {
	d := &containerDefaults{cg: cg, log: log}
	nd, err := buildNodeDefaults(cfg, cg, log)
	if err != nil {
		return nil, err
	}
	d.cur.Store(nd)
	return d, nil
}

// Get returns the defaults in force.
func (d *containerDefaults) Get() *ocispec.NodeDefaults { return d.cur.Load() }

// Reload rebuilds the defaults from a reloaded configuration (re-reading
// the seccomp profile and the hook directories). When they do not check
// out, the ones in force stay.
func (d *containerDefaults) Reload(cfg *config.Config) {
	nd, err := buildNodeDefaults(cfg, d.cg, d.log)
	if err != nil {
		d.log.Error("SIGHUP: container defaults not reloaded; the previous ones stay in force", "err", err)
		return
	}
	d.cur.Store(nd)
}

// buildNodeDefaults turns the [containers] defaults into what the spec
// builder applies, checking what config.Validate cannot: that the kernel
// has each sysctl, that floe may set each rlimit, that the host has a
// pids controller for pids_limit, and that the seccomp profile file reads
// and converts. Any of these failing would fail every container, so each
// is an error naming its key.
func buildNodeDefaults(cfg *config.Config, cg *cgroups.Support, log *slog.Logger) (*ocispec.NodeDefaults, error) {
	c := cfg.Containers
	sysctls, err := ocispec.ParseDefaultSysctls(c.DefaultSysctls)
	if err != nil {
		return nil, fmt.Errorf("key \"containers.default_sysctls\": %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(sysctls)) {
		if err := ocispec.CheckSysctlsKnown(map[string]string{name: sysctls[name]}, procSys); err != nil {
			return nil, fmt.Errorf("key \"containers.default_sysctls\": %q: %w", name, err)
		}
	}
	rlimits, err := ocispec.ParseUlimits(c.DefaultUlimits)
	if err != nil {
		return nil, fmt.Errorf("key \"containers.default_ulimits\": %w", err)
	}
	if err := ocispec.CheckRlimitsSettable(rlimits, procSys); err != nil {
		return nil, fmt.Errorf("key \"containers.default_ulimits\": %w", err)
	}
	nd := &ocispec.NodeDefaults{Sysctls: sysctls, Rlimits: rlimits, SeccompProfilePath: c.SeccompProfile}
	if c.PidsLimit > 0 {
		if cg != nil && !cg.Has(cgroups.CtrlPids) {
			return nil, fmt.Errorf("key \"containers.pids_limit\": %d cannot be applied: %s; set 0 for unlimited", c.PidsLimit, cg.WhyMissing(cgroups.CtrlPids))
		}
		nd.PidsLimit = c.PidsLimit
	}
	if c.SeccompProfile != "" {
		if nd.SeccompProfile, err = ocispec.LoadSeccompProfile(c.SeccompProfile); err != nil {
			return nil, fmt.Errorf("key \"containers.seccomp_profile\": %s: %w", c.SeccompProfile, err)
		}
	}
	nd.Hooks = hooks.Load(c.HooksDir, log)
	log.Info("container defaults", "sysctls", c.DefaultSysctls, "ulimits", c.DefaultUlimits, "pidsLimit", c.PidsLimit,
		"seccompProfile", c.SeccompProfile, "hooksDirs", c.HooksDir, "hooks", len(nd.Hooks.Hooks()))
	return nd, nil
}
