// Package diagnose checks the host at startup and reports, in one block a
// person can read, what floe needs and what is missing or wrong: runtime
// binaries, the container monitor, CNI, the cgroup driver against the host,
// overlayfs and kernel features. Only problems that make floe unusable are
// fatal; the rest is reported and surfaces in Status conditions.
package diagnose

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/floe-cri/floe/internal/cgroups"
	"github.com/floe-cri/floe/internal/checkpoint"
	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/handlerprobe"
	"github.com/floe-cri/floe/internal/lsm"
	"github.com/floe-cri/floe/internal/network"
)

// Level of a finding.
type Level string

// Finding levels.
const (
	OK    Level = "ok"
	Warn  Level = "warn"
	Fatal Level = "FAIL"
)

// Finding is one checked item.
type Finding struct {
	Level  Level  `json:"level"`
	Item   string `json:"item"`
	Detail string `json:"detail"`
}

// Host paths the checks read; tests may point them elsewhere.
type Host struct {
	SystemdDir    string // /run/systemd/system exists when systemd is PID 1
	Filesystems   string // /proc/filesystems
	MetacopyParam string // overlay module parameter
	MaxUserNS     string // /proc/sys/user/max_user_namespaces
	MonitorPath   string // conmon
}

// DefaultHost is the real host.
var DefaultHost = Host{
	SystemdDir:    "/run/systemd/system",
	Filesystems:   "/proc/filesystems",
	MetacopyParam: "/sys/module/overlay/parameters/metacopy",
	MaxUserNS:     "/proc/sys/user/max_user_namespaces",
	MonitorPath:   "/usr/bin/conmon",
}

// Run performs every check.
// probes are the handlers' trial containers (see internal/handlerprobe);
// a handler missing from it is only checked for its binary.
func Run(ctx context.Context, cfg *config.Config, netw *network.Manager, cg *cgroups.Support, h Host, probes map[string]handlerprobe.Result) []Finding {
	var out []Finding
	names := make([]string, 0, len(cfg.Runtimes))
	for n := range cfg.Runtimes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, checkRuntime(ctx, n, cfg.Runtimes[n], n == cfg.DefaultRuntime, probes))
	}
	if st, err := os.Stat(h.MonitorPath); err != nil || st.Mode()&0o111 == 0 {
		out = append(out, Finding{Warn, "monitor", fmt.Sprintf("conmon not found at %s: containers cannot be started (apt-get install conmon)", h.MonitorPath)})
	} else {
		out = append(out, Finding{OK, "monitor", h.MonitorPath})
	}
	if err := netw.Status(); err != nil {
		out = append(out, Finding{Warn, "CNI", err.Error() + "; pods cannot get a network until this is fixed (NetworkReady=false)"})
	} else {
		_, file, _ := netw.ActiveConfig()
		out = append(out, Finding{OK, "CNI", "using " + file + " with plugins from " + strings.Join(cfg.Network.CNIPluginDirs, ":")})
	}
	out = append(out, checkCgroups(cfg, cg, h)...)
	if fs, err := os.ReadFile(h.Filesystems); err == nil && strings.Contains(string(fs), "\toverlay\n") {
		out = append(out, Finding{OK, "overlayfs", "supported"})
	} else {
		out = append(out, Finding{Warn, "overlayfs", "not in " + h.Filesystems + " (modprobe overlay); image layers need it"})
	}
	if _, err := os.Stat(h.MetacopyParam); err == nil {
		out = append(out, Finding{OK, "overlay metacopy", "available (enable with the metacopy=on mount option)"})
	} else {
		out = append(out, Finding{Warn, "overlay metacopy", "not available in this kernel; chown/chmod copy whole files up"})
	}
	if b, err := os.ReadFile(h.MaxUserNS); err == nil && strings.TrimSpace(string(b)) != "0" {
		out = append(out, Finding{OK, "user namespaces", "enabled (max " + strings.TrimSpace(string(b)) + ")"})
	} else {
		out = append(out, Finding{Warn, "user namespaces", "disabled; pods asking for user namespaces will fail"})
	}
	return out
}

func checkRuntime(ctx context.Context, name string, rt config.Runtime, isDefault bool, probes map[string]handlerprobe.Result) Finding {
	item := "runtime " + name
	if isDefault {
		item += " (default)"
	}
	// A missing runtime is not fatal: floe keeps serving (lists, removal,
	// networking) and reports RuntimeReady=false until it is installed.
	level := Warn
	st, err := os.Stat(rt.RuntimePath)
	if err != nil || st.Mode()&0o111 == 0 {
		return Finding{level, item, fmt.Sprintf("%s is missing or not executable; install it or set runtimes.%s.runtime_path", rt.RuntimePath, name)}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, rt.RuntimePath, "--version").Output()
	if err != nil {
		return Finding{level, item, fmt.Sprintf("%s --version failed: %v", rt.RuntimePath, err)}
	}
	first, _, _ := strings.Cut(string(out), "\n")
	root := rt.RuntimeRoot
	if root == "" {
		root = "runtime default"
	}
	desc := fmt.Sprintf("%s (%s; state root: %s)", rt.RuntimePath, strings.TrimSpace(first), root)
	if res, ok := probes[name]; ok {
		if !res.Usable {
			return Finding{level, item, fmt.Sprintf("%s is UNUSABLE: its trial container failed: %s; pods asking for handler %q are refused", desc, res.Error, name)}
		}
		desc += fmt.Sprintf("; trial container made and deleted in %v", res.Duration.Round(time.Millisecond))
	} else if probes != nil {
		desc += "; trial container still under way (its result goes to the log, floe status and Status; pods asking for it wait for it)"
	}
	return Finding{OK, item, desc}
}

// Checkpoint reports whether containers can be checkpointed (criu). Not
// being able to is no reason to stop floe: CheckpointContainer then says
// why.
func Checkpoint(s checkpoint.Support) Finding {
	if !s.Usable() {
		return Finding{Warn, "checkpoint/restore", "unavailable: " + s.Problem + "; CheckpointContainer and restores answer FailedPrecondition"}
	}
	msg := fmt.Sprintf("criu %s works (%s)", s.Version, s.CRIUPath)
	if s.RootOnly {
		msg += "; without CAP_SYS_RESOURCE only containers running as 0:0 can be checkpointed"
	}
	return Finding{OK, "checkpoint/restore", msg}
}

// LSM reports the Linux security modules the node enforces, and warns
// when containers asking for the runtime's default AppArmor profile will
// be refused.
func LSM(h lsm.Host, defaultProfile string) Finding {
	msg := h.String()
	if !h.AppArmor {
		return Finding{OK, "LSMs", msg}
	}
	if defaultProfile == "" {
		return Finding{Warn, "LSMs", msg + "; apparmor.default_profile is empty, so containers asking for AppArmor RuntimeDefault are refused"}
	}
	if ok, err := h.ProfileLoaded(defaultProfile); err != nil || !ok {
		why := "is not loaded"
		if err != nil {
			why = err.Error()
		}
		return Finding{Warn, "LSMs", fmt.Sprintf("%s; apparmor.default_profile %q %s, so containers asking for AppArmor RuntimeDefault are refused", msg, defaultProfile, why)}
	}
	return Finding{OK, "LSMs", fmt.Sprintf("%s; AppArmor RuntimeDefault is profile %q", msg, defaultProfile)}
}

func checkCgroups(cfg *config.Config, cg *cgroups.Support, h Host) []Finding {
	out := []Finding{{OK, "cgroups", cg.Summary()}}
	// The kubelet sends a hugepage limit for every page size the node
	// has; without hugetlb they are left out (zero) or refused (nonzero).
	if len(cg.HugepageSizes) > 0 && !cg.Has(cgroups.CtrlHugetlb) {
		out = append(out, Finding{Warn, "cgroup hugetlb", cg.WhyMissing(cgroups.CtrlHugetlb) + "; the kubelet's zero hugepage limits are left out and containers asking for huge pages are refused"})
	}
	if !cg.MemorySwap {
		out = append(out, Finding{Warn, "cgroup memory swap", "no " + cg.SwapFile() + ": the kubelet's no-swap setting is left out and containers asking for swap are refused"})
	}
	_, err := os.Stat(h.SystemdDir)
	systemd := err == nil
	switch {
	case cfg.CgroupManager == "systemd" && !systemd:
		out = append(out, Finding{Fatal, "cgroup driver", "cgroup_manager is \"systemd\" but systemd is not running on this host (" + h.SystemdDir + " is absent); set cgroup_manager = \"cgroupfs\" in floe's config and cgroupDriver: cgroupfs in the kubelet's"})
	case cfg.CgroupManager == "cgroupfs" && systemd:
		out = append(out, Finding{Warn, "cgroup driver", "cgroupfs while systemd manages this host; the kubelet's cgroupDriver must also be cgroupfs (systemd is recommended on such hosts)"})
	default:
		out = append(out, Finding{OK, "cgroup driver", cfg.CgroupManager + " (the kubelet's cgroupDriver must match)"})
	}
	return out
}

// Format renders findings as the startup block.
func Format(fs []Finding) string {
	var b strings.Builder
	b.WriteString("floe startup checks:\n")
	for _, f := range fs {
		fmt.Fprintf(&b, "  %-5s %-22s %s\n", f.Level, f.Item, f.Detail)
	}
	return b.String()
}

// FatalError joins the fatal findings, or returns nil.
func FatalError(fs []Finding) error {
	var msgs []string
	for _, f := range fs {
		if f.Level == Fatal {
			msgs = append(msgs, f.Item+": "+f.Detail)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("cannot start: %s", strings.Join(msgs, "; "))
}
