package ocispec

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/floe-cri/floe/internal/errdefs"
)

// capNames maps capability numbers to names (linux/capability.h).
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// AllCapabilities returns every capability name floe knows.
func AllCapabilities() []string { return slices.Clone(capNames) }

// normalizeCap turns "net_admin" or "CAP_NET_ADMIN" into "CAP_NET_ADMIN".
func normalizeCap(name string) string {
	n := strings.ToUpper(strings.TrimSpace(name))
	if n == "ALL" || strings.HasPrefix(n, "CAP_") {
		return n
	}
	return "CAP_" + n
}

// BoundingSet reads the daemon's own capability bounding set from
// /proc/self/status. runc cannot hand a container a capability the daemon
// lacks ("unable to apply caps: operation not permitted"), so this is the
// ceiling for every container.
func BoundingSet() ([]string, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil, fmt.Errorf("read own capabilities: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "CapBnd:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("parse CapBnd %q: %w", v, err)
		}
		return capsFromMask(mask), nil
	}
	return nil, fmt.Errorf("no CapBnd line in /proc/self/status")
}

func capsFromMask(mask uint64) []string {
	var out []string
	for i, name := range capNames {
		if mask&(1<<uint(i)) != 0 {
			out = append(out, name)
		}
	}
	return out
}

// ComputeCapabilities computes the container's capability set:
//   - privileged: every capability;
//   - otherwise the defaults; drop "ALL" empties the set, add "ALL" fills
//     it; then named drops are removed and named adds are added (an add
//     wins over a drop of the same name, as in containerd);
//
// and finally keeps the result within bounding, logging what the host
// cannot grant. Unknown names are an InvalidArgument error.
func ComputeCapabilities(defaults []string, req Capabilities, privileged bool, bounding []string, log *slog.Logger) ([]string, error) {
	known := map[string]bool{}
	for _, c := range capNames {
		known[c] = true
	}
	check := func(field string, names []string) ([]string, bool, error) {
		var out []string
		all := false
		for _, n := range names {
			c := normalizeCap(n)
			switch {
			case c == "ALL":
				all = true
			case known[c]:
				out = append(out, c)
			default:
				return nil, false, errdefs.InvalidArgument(field, "unknown capability %q", n)
			}
		}
		return out, all, nil
	}
	add, addAll, err := check("security_context.capabilities.add_capabilities", req.Add)
	if err != nil {
		return nil, err
	}
	drop, dropAll, err := check("security_context.capabilities.drop_capabilities", req.Drop)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	if privileged {
		for _, c := range capNames {
			set[c] = true
		}
	} else {
		base, _, err := check("default_capabilities", defaults)
		if err != nil {
			return nil, err
		}
		if !dropAll {
			for _, c := range base {
				set[c] = true
			}
		}
		if addAll {
			for _, c := range capNames {
				set[c] = true
			}
		}
		for _, c := range drop {
			delete(set, c)
		}
		for _, c := range add {
			set[c] = true
		}
	}
	allowed := map[string]bool{}
	for _, c := range bounding {
		allowed[normalizeCap(c)] = true
	}
	var out, missing []string
	for _, c := range capNames { // stable, kernel order
		if !set[c] {
			continue
		}
		if allowed[c] {
			out = append(out, c)
		} else {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		// Only a request the container explicitly made is worth a warning;
		// privileged and add ALL always ask for everything.
		var explicit []string
		for _, c := range missing {
			if slices.Contains(add, c) || (!privileged && !addAll && slices.Contains(defaults, c)) {
				explicit = append(explicit, c)
			}
		}
		level := slog.LevelDebug
		if len(explicit) > 0 {
			level = slog.LevelWarn
		}
		log.Log(context.Background(), level, "capabilities outside floe's own bounding set left out", "capabilities", missing)
	}
	return out, nil
}
