// Package cgroups holds what floe needs to know about cgroup drivers: is
// systemd usable, how a kubelet CgroupParent maps onto the configured
// driver, and which cgroupsPath string runc expects for a container.
//
// The kubelet and the runtime must agree on the driver. With the cgroupfs
// driver the kubelet sends paths (/kubepods/burstable/pod<uid>); with the
// systemd driver it sends slice names (kubepods-burstable-pod<uid>.slice).
// runc takes a cgroupfs path literally, so a slice name handed to it would
// become a directory called "kubepods-burstable-pod<uid>.slice" at the root
// of every hierarchy; floe expands it to the path systemd itself would use.
package cgroups

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"strings"
	"time"

	"github.com/floe-cri/floe/internal/errdefs"
)

// Driver names, as spelled in floe's cgroup_manager setting and the
// kubelet's cgroupDriver setting.
const (
	DriverCgroupfs = "cgroupfs"
	DriverSystemd  = "systemd"
)

// Locations systemd exposes when it runs as init. They are variables so
// tests can point them elsewhere.
var (
	systemdRuntimeDir    = "/run/systemd/system"
	systemdPrivateSocket = "/run/systemd/private"
)

// SystemdUsable reports whether systemd runs as init and answers on its
// private socket. The first test is sd_booted(3)'s; the second catches a
// host that has the directory left over but no live manager.
func SystemdUsable() error {
	st, err := os.Lstat(systemdRuntimeDir)
	if err != nil || !st.IsDir() {
		return fmt.Errorf("systemd is not running as init on this host (%s is missing)", systemdRuntimeDir)
	}
	conn, err := net.DialTimeout("unix", systemdPrivateSocket, 2*time.Second)
	if err != nil {
		return fmt.Errorf("systemd is not reachable on %s: %w", systemdPrivateSocket, err)
	}
	return conn.Close()
}

// CheckDriver is the startup check for floe's cgroup_manager setting.
func CheckDriver(driver string) error {
	switch driver {
	case DriverCgroupfs:
		return nil
	case DriverSystemd:
		if err := SystemdUsable(); err != nil {
			return fmt.Errorf("cgroup_manager is %q but %v; set cgroup_manager = %q in floe's configuration and cgroupDriver: %s in the kubelet's configuration",
				DriverSystemd, err, DriverCgroupfs, DriverCgroupfs)
		}
		return nil
	default:
		return fmt.Errorf("unknown cgroup_manager %q: want %q or %q", driver, DriverCgroupfs, DriverSystemd)
	}
}

// ExpandSlice turns a systemd slice name into the cgroup path systemd
// creates for it: every dash-separated prefix is a parent slice, so
// "kubepods-burstable-pod123.slice" lives at
// "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod123.slice".
// "-.slice" is the root slice. Names that systemd itself would refuse are
// refused, so the result never escapes the hierarchy.
func ExpandSlice(slice string) (string, error) {
	const suffix = ".slice"
	if !strings.HasSuffix(slice, suffix) || len(slice) <= len(suffix) {
		return "", fmt.Errorf("invalid slice name %q: must end in %q", slice, suffix)
	}
	if strings.ContainsAny(slice, "/\x00") {
		return "", fmt.Errorf("invalid slice name %q: contains a path separator", slice)
	}
	if slice == "-.slice" {
		return "/", nil
	}
	name := strings.TrimSuffix(slice, suffix)
	if strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-") || strings.Contains(name, "--") {
		return "", fmt.Errorf("invalid slice name %q: empty component between dashes", slice)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:\\", r)) {
			return "", fmt.Errorf("invalid slice name %q: character %q not allowed", slice, r)
		}
	}
	var b strings.Builder
	prefix := ""
	for _, part := range strings.Split(name, "-") {
		if part == "." || part == ".." {
			return "", fmt.Errorf("invalid slice name %q: component %q", slice, part)
		}
		b.WriteString("/")
		b.WriteString(prefix + part + suffix)
		prefix += part + "-"
	}
	return b.String(), nil
}

// ParentPath validates a kubelet CgroupParent for the given driver and
// returns it in that driver's form: an absolute, clean path for cgroupfs
// (a slice name is expanded), a slice name for systemd. An empty parent is
// allowed and means the root.
func ParentPath(driver, parent string) (string, error) {
	switch driver {
	case DriverCgroupfs:
		if parent == "" {
			return "/", nil
		}
		if strings.HasSuffix(parent, ".slice") && !strings.Contains(parent, "/") {
			return ExpandSlice(parent)
		}
		if !strings.HasPrefix(parent, "/") {
			return "", errdefs.InvalidArgument("cgroup_parent", "%q is neither an absolute path nor a systemd slice name", parent)
		}
		clean := path.Clean(parent)
		if clean != parent && clean+"/" != parent {
			return "", errdefs.InvalidArgument("cgroup_parent", "%q is not a clean path", parent)
		}
		return clean, nil
	case DriverSystemd:
		if parent == "" {
			return "-.slice", nil
		}
		if strings.Contains(parent, "/") {
			return "", errdefs.InvalidArgument("cgroup_parent",
				"%q is a cgroupfs path but floe uses the systemd cgroup driver; the kubelet's cgroupDriver and floe's cgroup_manager must be the same (both %q or both %q)",
				parent, DriverSystemd, DriverCgroupfs)
		}
		if _, err := ExpandSlice(parent); err != nil {
			return "", errdefs.InvalidArgument("cgroup_parent", "%v", err)
		}
		return parent, nil
	default:
		return "", fmt.Errorf("unknown cgroup driver %q", driver)
	}
}

// ContainerPath is the linux.cgroupsPath runc gets for one container (or
// pod-level process) named prefix-id under parent: "<parent>/<prefix>-<id>"
// for cgroupfs, "<slice>:<prefix>:<id>" for systemd (runc then creates the
// scope <prefix>-<id>.scope in that slice).
func ContainerPath(driver, parent, prefix, id string) (string, error) {
	if id == "" || strings.ContainsAny(id, "/:") || strings.ContainsAny(prefix, "/:") {
		return "", errors.New("container cgroup: id and prefix must be non-empty and contain no '/' or ':'")
	}
	p, err := ParentPath(driver, parent)
	if err != nil {
		return "", err
	}
	if driver == DriverSystemd {
		return p + ":" + prefix + ":" + id, nil
	}
	name := id
	if prefix != "" {
		name = prefix + "-" + id
	}
	return path.Join(p, name), nil
}
