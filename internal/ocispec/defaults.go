package ocispec

import (
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	units "github.com/docker/go-units"
	seccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/hooks"
)

// NodeDefaults are the node-wide settings every container gets unless its
// pod or the kubelet asks otherwise (the [containers] table). A value is
// not changed once built: the daemon swaps in a new one on SIGHUP.
type NodeDefaults struct {
	// Sysctls are namespaced sysctls in dotted form (ParseDefaultSysctls).
	Sysctls map[string]string
	// Rlimits become process.rlimits (ParseUlimits).
	Rlimits []specs.POSIXRlimit
	// PidsLimit, when above 0, is the container cgroup's pids.max unless
	// the container's resources set one.
	PidsLimit int64
	// SeccompProfile is the JSON profile RuntimeDefault uses, read from
	// SeccompProfilePath (LoadSeccompProfile); nil uses the built-in one.
	SeccompProfile     []byte
	SeccompProfilePath string
	// Hooks are the OCI hooks from the hook directories.
	Hooks *hooks.Set
}

// ParseDefaultSysctls reads "name=value" entries. Names may use the dotted
// or the slash form and must be namespaced (net.*, or an IPC one): a
// node-wide sysctl cannot be set per pod. Later entries win.
func ParseDefaultSysctls(entries []string) (map[string]string, error) {
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		k, v, ok := strings.Cut(e, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not name=value", e)
		}
		name := NormalizeSysctl(k)
		if _, err := sysctlComponents(name); err != nil {
			return nil, fmt.Errorf("%q: %v", e, err)
		}
		if sysctlNamespace(name) == "" {
			return nil, fmt.Errorf("%q: %s is not a namespaced sysctl; only net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.* may be set per pod", e, name)
		}
		if err := checkSysctlValue(v); err != nil {
			return nil, fmt.Errorf("%q: %v", e, err)
		}
		out[name] = v
	}
	return out, nil
}

// ulimitNames are the names ParseUlimits takes (docker's and CRI-O's).
const ulimitNames = "core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack"

// ParseUlimits reads CRI-O's "name=soft[:hard]" entries into rlimits;
// -1 means unlimited. A name may appear once.
func ParseUlimits(entries []string) ([]specs.POSIXRlimit, error) {
	var out []specs.POSIXRlimit
	seen := map[string]bool{}
	for _, e := range entries {
		u, err := units.ParseUlimit(strings.TrimSpace(e))
		if err != nil {
			return nil, fmt.Errorf("%q: %v; write name=soft:hard with a name among %s", e, err, ulimitNames)
		}
		if u.Soft < -1 || u.Hard < -1 {
			return nil, fmt.Errorf("%q: a limit is a number of 0 or more, or -1 for unlimited", e)
		}
		typ := "RLIMIT_" + strings.ToUpper(u.Name)
		if seen[typ] {
			return nil, fmt.Errorf("%q: %s is set twice", e, u.Name)
		}
		seen[typ] = true
		out = append(out, specs.POSIXRlimit{Type: typ, Soft: rlimitValue(u.Soft), Hard: rlimitValue(u.Hard)})
	}
	return out, nil
}

// rlimitValue maps -1 to RLIM_INFINITY.
func rlimitValue(v int64) uint64 {
	if v < 0 {
		return math.MaxUint64
	}
	return uint64(v)
}

// seccompActions are the actions runc knows; a profile naming another
// fails every container, so it is refused when loaded.
var seccompActions = []specs.LinuxSeccompAction{
	specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap, specs.ActErrno,
	specs.ActTrace, specs.ActAllow, specs.ActLog, specs.ActNotify,
}

// LoadSeccompProfile reads and checks a profile in docker/moby's JSON
// format, for [containers] seccomp_profile. It is evaluated once against a
// container with every capability, which converts every rule; each
// container later gets it evaluated against its own capabilities.
func LoadSeccompProfile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	all := AllCapabilities()
	probe := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}}}
	prof, err := seccomp.LoadProfile(string(data), probe)
	if err != nil {
		return nil, err
	}
	// moby reads a profile with neither as "no seccomp": RuntimeDefault
	// must never quietly mean unconfined.
	if prof == nil || prof.DefaultAction == "" {
		return nil, fmt.Errorf("the profile sets no defaultAction")
	}
	if !slices.Contains(seccompActions, prof.DefaultAction) {
		return nil, fmt.Errorf("defaultAction %q is not a seccomp action runc knows", prof.DefaultAction)
	}
	for _, sc := range prof.Syscalls {
		if !slices.Contains(seccompActions, sc.Action) {
			return nil, fmt.Errorf("syscalls %v: action %q is not a seccomp action runc knows", sc.Names, sc.Action)
		}
	}
	return data, nil
}

// podSysctls are the sysctls of a container: the node's defaults under
// the pod's own, which win for the same name. A default whose namespace
// the pod shares with the host (net.* for a host-network pod, IPC ones
// for a host-IPC pod) is left out: setting it would change the node.
func podSysctls(c *Container, d *NodeDefaults) (map[string]string, error) {
	own, err := ValidateSysctls(c.Sysctls, c.Namespaces)
	if err != nil {
		return nil, err
	}
	if d == nil || len(d.Sysctls) == 0 {
		return own, nil
	}
	out := make(map[string]string, len(d.Sysctls)+len(own))
	for name, v := range d.Sysctls {
		switch sysctlNamespace(name) {
		case "net":
			if c.Namespaces.HostNetwork {
				continue
			}
		case "ipc":
			if c.Namespaces.HostIPC {
				continue
			}
		default:
			continue // ParseDefaultSysctls refuses these
		}
		if name == pingGroupRange && c.Namespaces.UserPath != "" {
			fitted, ok := pingRangeInUserns(v, c.Namespaces.GIDMappings)
			if !ok {
				continue
			}
			v = fitted
		}
		out[name] = v
	}
	maps.Copy(out, own)
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

const pingGroupRange = "net.ipv4.ping_group_range"

// pingRangeInUserns fits a default ping_group_range to the gids a pod's
// user namespace maps. The kernel reads the two gids in the writer's user
// namespace (the container's) and refuses the write (EINVAL) when either
// is unmapped there, so the default "0 2147483647" would fail every
// container of such a pod. Each end moves inward to the nearest mapped
// gid; false means no mapped gid lies in the range.
func pingRangeInUserns(value string, gidMaps []specs.LinuxIDMapping) (string, bool) {
	f := strings.Fields(value)
	if len(f) != 2 {
		return "", false
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 32)
	hi, err2 := strconv.ParseUint(f[1], 10, 32)
	if err1 != nil || err2 != nil || lo > hi {
		return "", false
	}
	newLo, newHi, found := uint64(math.MaxUint64), uint64(0), false
	for _, m := range gidMaps {
		first, last := uint64(m.ContainerID), uint64(m.ContainerID)+uint64(m.Size)-1
		if m.Size == 0 || last < lo || first > hi {
			continue
		}
		newLo, newHi, found = min(newLo, max(first, lo)), max(newHi, min(last, hi)), true
	}
	if !found {
		return "", false
	}
	return fmt.Sprintf("%d %d", newLo, newHi), true
}

// applyNodeDefaults sets the rlimits, the pid limit and the OCI hooks of
// the node's defaults on a built spec. The hooks come last: they match
// on the final process and annotations.
func applyNodeDefaults(spec *specs.Spec, c *Container, d *NodeDefaults, log *slog.Logger) error {
	if d == nil {
		return nil
	}
	if len(d.Rlimits) > 0 {
		spec.Process.Rlimits = slices.Clone(d.Rlimits)
	}
	if d.PidsLimit > 0 && c.Resources.PidsLimit <= 0 {
		if spec.Linux.Resources == nil {
			spec.Linux.Resources = &specs.LinuxResources{}
		}
		limit := d.PidsLimit
		spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: &limit}
	}
	// Hooks match on the CRI-requested host bind mounts, as in CRI-O:
	// the pod files floe mounts itself do not count.
	added, err := d.Hooks.Apply(spec, spec.Annotations, len(c.Mounts) > 0)
	if err != nil {
		return fmt.Errorf("container %s: %w", c.ID, err)
	}
	if len(added) > 0 {
		log.Info("OCI hooks added", "hooks", added)
	}
	return nil
}

// seccompDefault returns the configured RuntimeDefault profile, nil for
// the built-in one.
func (d *NodeDefaults) seccompDefault() ([]byte, string) {
	if d == nil {
		return nil, ""
	}
	return d.SeccompProfile, d.SeccompProfilePath
}

// nodeDefaults are the defaults opts carries, nil when none.
func nodeDefaults(opts Options) *NodeDefaults {
	if opts.Defaults == nil {
		return nil
	}
	return opts.Defaults()
}
