// Package userns holds what floe needs to run a pod in a user namespace of
// its own (CRI NamespaceOption.userns_options mode POD, the kubelet's
// hostUsers: false): the pod's ID mappings and their checks, and idmapped
// mounts (mount_setattr MOUNT_ATTR_IDMAP), which make host files owned by
// root appear owned by the pod's root without copying or chowning them.
// runc 1.1 cannot make idmapped mounts itself, so floe makes them before
// runc runs and hands runc plain bind mounts of them.
package userns

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	"go.podman.io/storage/pkg/idmap"
	"go.podman.io/storage/pkg/idtools"
	"golang.org/x/sys/unix"
)

// IDMap maps Size ids from ContainerID inside the namespace to HostID.
type IDMap struct {
	ContainerID uint32 `json:"containerId"`
	HostID      uint32 `json:"hostId"`
	Size        uint32 `json:"size"`
}

// Mappings are a pod's uid and gid mappings.
type Mappings struct {
	UIDs []IDMap `json:"uids"`
	GIDs []IDMap `json:"gids"`
}

// Equal reports whether two sets of mappings are the same.
func (m *Mappings) Equal(o *Mappings) bool {
	if m == nil || o == nil {
		return m == o
	}
	eq := func(a, b []IDMap) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	return eq(m.UIDs, o.UIDs) && eq(m.GIDs, o.GIDs)
}

// FieldError names the sub-field (uids or gids, and the index) a mapping
// problem is about, so the CRI layer can name the whole field.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Check enforces what floe can run: exactly one uid and one gid mapping
// (the kubelet sends one of each; runc joins a namespace made elsewhere and
// the idmapped mounts are made from one mapping), container id 0 mapped
// (the pod's root must exist: runc sets the container up as it), no
// empty or overflowing range.
func (m Mappings) Check() error {
	for _, k := range []struct {
		name string
		maps []IDMap
	}{{"uids", m.UIDs}, {"gids", m.GIDs}} {
		if len(k.maps) != 1 {
			return &FieldError{k.name, fmt.Errorf("exactly one mapping is supported, got %d", len(k.maps))}
		}
		mp := k.maps[0]
		field := k.name + "[0]"
		switch {
		case mp.Size == 0:
			return &FieldError{field + ".length", errors.New("must not be 0")}
		case mp.ContainerID != 0:
			return &FieldError{field + ".container_id", fmt.Errorf("is %d: container id 0 (the pod's root) must be mapped", mp.ContainerID)}
		case uint64(mp.HostID)+uint64(mp.Size) > math.MaxUint32:
			return &FieldError{field, fmt.Errorf("host ids %d+%d overflow 32 bits", mp.HostID, mp.Size)}
		}
	}
	return nil
}

// Root returns the host uid and gid of the pod's root (Check passed).
func (m Mappings) Root() (uid, gid uint32) { return m.UIDs[0].HostID, m.GIDs[0].HostID }

// Format renders one mapping line set as /proc/PID/uid_map has it.
func Format(maps []IDMap) string {
	s := ""
	for _, mp := range maps {
		s += fmt.Sprintf("%d %d %d\n", mp.ContainerID, mp.HostID, mp.Size)
	}
	return s
}

// Traversable reports the first ancestor of path (itself included) that an
// unprivileged user cannot search: runc mounts a user-namespaced
// container's rootfs as the pod's root, which has no rights on host
// directories beyond what "others" have.
func Traversable(path string) error {
	for p := path; ; {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s (mode %o) cannot be searched by the pods' unprivileged root; give it o+x", p, st.Mode().Perm())
		}
		parent := parentDir(p)
		if parent == p {
			return nil
		}
		p = parent
	}
}

func parentDir(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "/"
}

// Support is floe's finding about pod user namespaces on this node,
// reported in Status (verbose), /info and the startup checks.
type Support struct {
	Enabled bool `json:"enabled"`
	// Mechanism says how files get the pod's owners without copies.
	Mechanism string `json:"mechanism,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

func (s Support) String() string {
	if s.Enabled {
		return "enabled: " + s.Mechanism
	}
	return "disabled: " + s.Reason
}

// Probe finds whether this node can run pods in user namespaces the way
// floe does it: user namespaces enabled, idmapped mounts on the file
// system of runDir (pod files, bundles), runDir searchable by the pods'
// unprivileged roots, and layers the image store can mount idmapped
// (layers reports that, with a reason when not).
func Probe(runDir string, layers func() (bool, string)) Support {
	no := func(format string, a ...any) Support { return Support{Reason: fmt.Sprintf(format, a...)} }
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		return no("the kernel has no user namespaces")
	}
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil && strings.TrimSpace(string(b)) == "0" {
		return no("user.max_user_namespaces is 0")
	}
	if err := Traversable(runDir); err != nil {
		return no("run dir: %v", err)
	}
	if err := probeIDMap(runDir); err != nil {
		return no("idmapped mounts on %s: %v", runDir, err)
	}
	if ok, reason := layers(); !ok {
		return no("%s", reason)
	}
	return Support{Enabled: true, Mechanism: "kernel idmapped mounts: image layers idmapped by containers/storage (overlay on idmapped lower layers, no copies), pod files and volumes idmapped by floe (mount_setattr MOUNT_ATTR_IDMAP) before runc binds them"}
}

// probeIDMap idmaps a detached copy of dir's mount, which is dropped again
// when its descriptor closes.
func probeIDMap(dir string) error {
	probe := []idtools.IDMap{{ContainerID: 0, HostID: 1 << 20, Size: 65536}}
	pid, cleanup, err := idmap.CreateUsernsProcess(probe, probe)
	if err != nil {
		return fmt.Errorf("create a user namespace: %w", err)
	}
	defer cleanup()
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", pid))
	if err != nil {
		return err
	}
	defer ns.Close()
	tree, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}
	return unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr)
}
