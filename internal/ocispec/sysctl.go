package ocispec

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/floe-cri/floe/internal/errdefs"
)

// NormalizeSysctl turns the slash form Kubernetes also accepts
// ("net/ipv4/ip_forward", where a dot belongs to a name component such as
// an interface "eth0.100") into the dotted form (dots and slashes swap).
func NormalizeSysctl(name string) string {
	if !strings.Contains(name, "/") {
		return name
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '/':
			return '.'
		case '.':
			return '/'
		}
		return r
	}, name)
}

// sysctlNamespace reports which namespace owns a sysctl, or "" when the
// sysctl is node-wide and must not be set from a container.
func sysctlNamespace(name string) string {
	switch {
	case strings.HasPrefix(name, "net."):
		return "net"
	case name == "kernel.sem", strings.HasPrefix(name, "kernel.shm"),
		strings.HasPrefix(name, "kernel.msg"), strings.HasPrefix(name, "fs.mqueue."):
		return "ipc"
	}
	return ""
}

// maxSysctlValue bounds a value: the kernel reads at most a page from
// one write to a /proc/sys file.
const maxSysctlValue = 4096

func sysctlField(key string) string {
	return fmt.Sprintf("linux.sysctls[%q]", key)
}

// sysctlComponents splits a normalized name into its /proc/sys path
// components, refusing anything that is not a plain name: a component
// must be letters, digits, '_', '-' or (from the slash form) '.', and not
// "." or "..", so the name can only ever point inside /proc/sys.
func sysctlComponents(name string) ([]string, error) {
	parts := strings.Split(name, ".")
	if len(parts) < 2 {
		return nil, fmt.Errorf("malformed sysctl name (want dotted components such as net.ipv4.ip_forward)")
	}
	for i, p := range parts {
		p = strings.ReplaceAll(p, "/", ".")
		ok := p != "" && p != "." && p != ".."
		for _, r := range p {
			ok = ok && (r == '_' || r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}
		if !ok {
			return nil, fmt.Errorf("malformed sysctl name: component %q is not a name of letters, digits, '_' and '-'", p)
		}
		parts[i] = p
	}
	return parts, nil
}

// ValidateSysctls accepts only well-formed namespaced sysctls with values
// the kernel can take as one write, and refuses those whose namespace is
// the host's (net.* with host network, IPC ones with host IPC), since
// setting them would change the node. It returns them normalized. Errors
// name the field as linux.sysctls["<key as sent>"].
func ValidateSysctls(sysctls map[string]string, ns Namespaces) (map[string]string, error) {
	if len(sysctls) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(sysctls))
	for _, k := range sortedKeys(sysctls) {
		v := sysctls[k]
		name := NormalizeSysctl(k)
		if _, err := sysctlComponents(name); err != nil {
			return nil, errdefs.InvalidArgument(sysctlField(k), "%v", err)
		}
		switch sysctlNamespace(name) {
		case "net":
			if ns.HostNetwork {
				return nil, errdefs.InvalidArgument(sysctlField(k), "not allowed: the pod uses the host network namespace")
			}
		case "ipc":
			if ns.HostIPC {
				return nil, errdefs.InvalidArgument(sysctlField(k), "not allowed: the pod uses the host IPC namespace")
			}
		default:
			return nil, errdefs.InvalidArgument(sysctlField(k), "not a namespaced sysctl; only net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.* may be set per pod")
		}
		if err := checkSysctlValue(v); err != nil {
			return nil, errdefs.InvalidArgument(sysctlField(k), "%v", err)
		}
		out[name] = v
	}
	return out, nil
}

// checkSysctlValue refuses a value runc cannot hand the kernel as one
// write: runc writes it as is, so a line break or NUL would give the
// kernel a second value, or a truncated one.
func checkSysctlValue(v string) error {
	if len(v) > maxSysctlValue {
		return fmt.Errorf("value is %d bytes; at most %d are allowed", len(v), maxSysctlValue)
	}
	if i := strings.IndexFunc(v, func(r rune) bool { return r != '\t' && (r < ' ' || r == 0x7f) }); i >= 0 {
		return fmt.Errorf("value %q holds the control character %q at byte %d (only spaces and tabs may separate numbers)", v, v[i], i)
	}
	return nil
}

// CheckSysctlsKnown refuses sysctls the kernel does not have, looking them
// up under procSys (/proc/sys of floe's own namespaces, which for net.*
// and IPC sysctls holds the same names a new namespace gets). A per-device
// sysctl (net.ipv4.conf.eth0.rp_filter) is looked up for the "default"
// device when the host has no such device: the pod's devices come from
// CNI later. Call it after ValidateSysctls.
func CheckSysctlsKnown(sysctls map[string]string, procSys string) error {
	for _, k := range sortedKeys(sysctls) {
		parts, err := sysctlComponents(NormalizeSysctl(k))
		if err != nil {
			return errdefs.InvalidArgument(sysctlField(k), "%v", err)
		}
		st, err := os.Stat(filepath.Join(append([]string{procSys}, parts...)...))
		if err != nil && len(parts) == 5 && parts[0] == "net" && (parts[2] == "conf" || parts[2] == "neigh") {
			dev := append([]string{}, parts...)
			dev[3] = "default"
			st, err = os.Stat(filepath.Join(append([]string{procSys}, dev...)...))
		}
		if err != nil {
			return errdefs.InvalidArgument(sysctlField(k), "this kernel has no such sysctl (%v)", err)
		}
		if st.IsDir() {
			return errdefs.InvalidArgument(sysctlField(k), "is a group of sysctls, not one")
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
