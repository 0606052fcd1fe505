package ocispec

import (
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

// ValidateSysctls accepts only namespaced sysctls, and refuses those whose
// namespace is the host's (net.* with host network, IPC ones with host IPC),
// since setting them would change the node. It returns them normalized.
func ValidateSysctls(sysctls map[string]string, ns Namespaces) (map[string]string, error) {
	if len(sysctls) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(sysctls))
	for k, v := range sysctls {
		name := NormalizeSysctl(k)
		if name == "" || strings.Contains(name, "..") || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") {
			return nil, errdefs.InvalidArgument("linux.sysctls", "malformed sysctl name %q", k)
		}
		switch sysctlNamespace(name) {
		case "net":
			if ns.HostNetwork {
				return nil, errdefs.InvalidArgument("linux.sysctls", "sysctl %q is not allowed: the pod uses the host network namespace", k)
			}
		case "ipc":
			if ns.HostIPC {
				return nil, errdefs.InvalidArgument("linux.sysctls", "sysctl %q is not allowed: the pod uses the host IPC namespace", k)
			}
		default:
			return nil, errdefs.InvalidArgument("linux.sysctls", "sysctl %q is not namespaced; only net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.* may be set per pod", k)
		}
		out[name] = v
	}
	return out, nil
}
