package ocispec

import (
	"fmt"
	"log/slog"

	"github.com/floe-cri/floe/internal/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Build returns the OCI runtime spec for c. Host facts missing from opts
// (bounding set, oom_score_adj floor) are read from /proc/self. Build
// reads the container's /etc/passwd and /etc/group and, for rshared or
// rslave mounts, may make the host mount holding the source shared; with
// an SELinux mount label it relabels the host paths of mounts that ask
// for it (see applyLSM). It has no other side effect.
func Build(c *Container, opts Options) (*specs.Spec, error) {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("container", c.ID)
	if c.Rootfs == "" {
		return nil, fmt.Errorf("container %s: no rootfs", c.ID)
	}

	argv, err := Argv(c.Image, c.Command, c.Args)
	if err != nil {
		return nil, err
	}
	cwd, err := WorkingDir(c.Image, c.WorkingDir)
	if err != nil {
		return nil, err
	}
	user, err := ResolveUser(c.Rootfs, c.Image, c.User)
	if err != nil {
		return nil, err
	}
	env := processEnv(c, user)
	caps, err := capabilities(c, opts, log)
	if err != nil {
		return nil, err
	}
	oomAdj, err := oomScoreAdj(c, opts, log)
	if err != nil {
		return nil, err
	}

	// One read of the node's defaults for the whole spec: a SIGHUP may
	// swap them meanwhile.
	nd := nodeDefaults(opts)
	sysctls, err := podSysctls(c, nd)
	if err != nil {
		return nil, err
	}
	resources, devs, err := resourcesAndDevices(c, opts, log)
	if err != nil {
		return nil, err
	}

	requested, rootfsPropagation, err := userMounts(c, log)
	if err != nil {
		return nil, err
	}

	spec := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: c.Rootfs, Readonly: c.ReadonlyRootfs},
		Process: &specs.Process{
			Terminal: c.TTY,
			User: specs.User{
				UID: user.UID, GID: user.GID, AdditionalGids: user.AdditionalGids,
				Username: user.Name,
			},
			Args: argv,
			Env:  env,
			Cwd:  cwd,
			Capabilities: &specs.LinuxCapabilities{
				// Inheritable stays empty: a non-empty inheritable set lets
				// file capabilities of an executed binary escape the
				// bounding intent (CVE-2022-24769).
				Bounding:  caps,
				Effective: caps,
				Permitted: caps,
			},
			NoNewPrivileges: c.NoNewPrivs,
			OOMScoreAdj:     &oomAdj,
		},
		Mounts:      mergeMounts(baseMounts(c), requested),
		Annotations: c.Annotations,
		Linux: &specs.Linux{
			Sysctl:            sysctls,
			Resources:         resources,
			CgroupsPath:       c.CgroupsPath,
			Namespaces:        namespaces(c.Namespaces),
			Devices:           devs,
			RootfsPropagation: rootfsPropagation,
		},
	}
	applyIDMappingsAndHostname(spec, c)
	maskPaths(spec, c)
	if err := applyConfinement(spec, c, nd, opts, log); err != nil {
		return nil, err
	}
	return spec, nil
}

// applyConfinement applies, in this order, the seccomp profile (the
// container's, or the node's default), the node's [containers] defaults
// and the LSM profile and labels, with the node defaults read once by
// Build.
func applyConfinement(spec *specs.Spec, c *Container, nd *NodeDefaults, opts Options, log *slog.Logger) error {
	profile, profilePath := nd.seccompDefault()
	if err := applySeccomp(spec, c.Seccomp, c.Privileged, profile, profilePath); err != nil {
		return err
	}
	if err := applyNodeDefaults(spec, c, nd, log); err != nil {
		return err
	}
	return applyLSM(spec, c, opts.Relabel)
}

// processEnv is the image's environment overridden by the container's,
// with PATH, HOSTNAME, HOME and (with a TTY) TERM filled in when unset.
func processEnv(c *Container, user *ResolvedUser) []string {
	env := MergeEnv(c.Image.Env, c.Env)
	if !hasEnv(env, "PATH") {
		env = append([]string{"PATH=" + defaultPath}, env...)
	}
	if c.Hostname != "" && !hasEnv(env, "HOSTNAME") {
		env = append(env, "HOSTNAME="+c.Hostname)
	}
	if !hasEnv(env, "HOME") {
		env = append(env, "HOME="+user.Home)
	}
	if c.TTY && !hasEnv(env, "TERM") {
		env = append(env, "TERM=xterm")
	}
	return env
}

// capabilities is the container's capability set: the defaults with its
// adds and drops (all for a privileged one), within floe's bounding set.
func capabilities(c *Container, opts Options, log *slog.Logger) ([]string, error) {
	bounding := opts.BoundingSet
	if bounding == nil {
		var err error
		if bounding, err = BoundingSet(); err != nil {
			return nil, err
		}
	}
	defaults := opts.DefaultCapabilities
	if defaults == nil {
		defaults = DefaultCapabilities
	}
	return ComputeCapabilities(defaults, c.Capabilities, c.Privileged, bounding, log)
}

// oomScoreAdj is the container's oom_score_adj, raised to the lowest floe
// may set.
func oomScoreAdj(c *Container, opts Options, log *slog.Logger) (int, error) {
	minAdj := 0
	if opts.MinOOMScoreAdj != nil {
		minAdj = *opts.MinOOMScoreAdj
	} else {
		var err error
		if minAdj, err = MinOOMScoreAdj(); err != nil {
			return 0, err
		}
	}
	return ClampOOMScoreAdj(c.OOMScoreAdj, minAdj, log), nil
}

// resourcesAndDevices are the container's cgroup limits (those the host
// cannot hold dropped, and logged) and its devices with their cgroup
// rules.
func resourcesAndDevices(c *Container, opts Options, log *slog.Logger) (*specs.LinuxResources, []specs.LinuxDevice, error) {
	resources, dropped, err := LinuxResources(c.Resources, opts.Cgroups)
	if err != nil {
		return nil, nil, err
	}
	LogDropped(log, dropped)
	devs, devRules, err := devices(c)
	if err != nil {
		return nil, nil, err
	}
	resources.Devices = devRules
	return resources, devs, nil
}

// applyIDMappingsAndHostname maps the ids of a container in the pod's
// user namespace and sets the hostname of one with a UTS namespace of its
// own.
func applyIDMappingsAndHostname(spec *specs.Spec, c *Container) {
	if c.Namespaces.UserPath != "" {
		spec.Linux.UIDMappings = c.Namespaces.UIDMappings
		spec.Linux.GIDMappings = c.Namespaces.GIDMappings
	}
	// A container that gets a UTS namespace of its own (no pod namespace
	// to join) is given the pod's hostname; a joined one already has it.
	if c.Namespaces.UTSPath == "" && !c.Namespaces.HostNetwork {
		spec.Hostname = c.Hostname
	}
}

// maskPaths masks and makes read-only the container's (or the default)
// /proc and /sys paths, unless it is privileged or asked for an unmasked
// /proc.
func maskPaths(spec *specs.Spec, c *Container) {
	if c.Privileged || c.ProcMountUnmasked {
		return
	}
	spec.Linux.MaskedPaths = c.MaskedPaths
	if spec.Linux.MaskedPaths == nil {
		spec.Linux.MaskedPaths = DefaultMaskedPaths
	}
	spec.Linux.ReadonlyPaths = c.ReadonlyPaths
	if spec.Linux.ReadonlyPaths == nil {
		spec.Linux.ReadonlyPaths = DefaultReadonlyPaths
	}
}

// namespaces joins the pod's pinned namespaces by path and gives the
// container its own mount namespace (and PID namespace unless the pod
// shares one or uses the host's). A host namespace is simply left out.
func namespaces(ns Namespaces) []specs.LinuxNamespace {
	out := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	if ns.UserPath != "" {
		out = append(out, specs.LinuxNamespace{Type: specs.UserNamespace, Path: ns.UserPath})
	}
	add := func(t specs.LinuxNamespaceType, host bool, path string, ownIfNoPath bool) {
		switch {
		case host:
		case path != "":
			out = append(out, specs.LinuxNamespace{Type: t, Path: path})
		case ownIfNoPath:
			out = append(out, specs.LinuxNamespace{Type: t})
		}
	}
	add(specs.NetworkNamespace, ns.HostNetwork, ns.NetPath, true)
	add(specs.IPCNamespace, ns.HostIPC, ns.IPCPath, true)
	add(specs.UTSNamespace, false, ns.UTSPath, !ns.HostNetwork)
	add(specs.PIDNamespace, ns.HostPID, ns.PIDPath, true)
	return out
}

// ExecProcess is the process of an exec (ExecSync, Exec) in a container
// built by Build: the container's user, environment, working directory,
// capabilities and no_new_privs with another command line. runc applies
// the container's seccomp profile, namespaces and cgroup by itself.
func ExecProcess(container *specs.Spec, argv []string, tty bool) (*specs.Process, error) {
	if container == nil || container.Process == nil {
		return nil, fmt.Errorf("exec: container spec has no process")
	}
	if len(argv) == 0 {
		return nil, errdefs.InvalidArgument("cmd", "empty command")
	}
	p := *container.Process
	p.Args = append([]string(nil), argv...)
	p.Terminal = tty
	p.Env = append([]string(nil), p.Env...)
	if tty && !hasEnv(p.Env, "TERM") {
		p.Env = append(p.Env, "TERM=xterm")
	}
	// The container's oom_score_adj already applies to everything in it.
	p.OOMScoreAdj = nil
	p.ConsoleSize = nil
	return &p, nil
}
