// Package nspin creates a pod's network, IPC and UTS namespaces and pins
// each one to a file with a bind mount, so they outlive the code that
// created them and need no pause container. It is floe's equivalent of
// CRI-O's pinns, done in-process: a goroutine locks itself to an OS
// thread, unshares that thread into new namespaces, sets the hostname,
// brings up loopback and bind-mounts /proc/thread-self/ns/<kind> onto the
// requested files. The goroutine then exits without unlocking, so Go
// destroys the thread instead of reusing it in the pod's namespaces (and
// since Go 1.10 new threads are never cloned from such a thread).
// cmd/floe keeps the main goroutine on the main thread, which Go could not
// destroy. Containers later join the namespaces by path.
package nspin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/moby/sys/mountinfo"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Request says which namespaces to create and where to pin them. An empty
// path means that namespace is not created (the pod uses the host's).
type Request struct {
	// UserPath is only for PinProcess: Pin never makes a user namespace.
	UserPath string
	NetPath  string
	IPCPath  string
	UTSPath  string
	Hostname string // set in the new UTS namespace
}

// Pin creates and pins the requested namespaces. On error nothing is left
// mounted or created.
func Pin(req Request) error {
	var flags int
	targets := map[string]string{}
	if req.NetPath != "" {
		flags |= unix.CLONE_NEWNET
		targets["net"] = req.NetPath
	}
	if req.IPCPath != "" {
		flags |= unix.CLONE_NEWIPC
		targets["ipc"] = req.IPCPath
	}
	if req.UTSPath != "" {
		flags |= unix.CLONE_NEWUTS
		targets["uts"] = req.UTSPath
	}
	if flags == 0 {
		return nil
	}
	for kind, p := range targets {
		if err := createMountTarget(p); err != nil {
			Unpin(pathsOf(targets)...)
			return fmt.Errorf("prepare %s namespace file: %w", kind, err)
		}
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: this thread's namespaces are the pod's now,
		// so it must end with this goroutine.
		done <- pinOnThread(flags, targets, req.Hostname)
	}()
	if err := <-done; err != nil {
		Unpin(pathsOf(targets)...)
		return err
	}
	return nil
}

// pinOnThread runs on a locked OS thread that is discarded afterwards.
func pinOnThread(flags int, targets map[string]string, hostname string) error {
	if err := unix.Unshare(flags); err != nil {
		return fmt.Errorf("unshare namespaces: %w", err)
	}
	if _, ok := targets["uts"]; ok && hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", hostname, err)
		}
	}
	if _, ok := targets["net"]; ok {
		// Package-level netlink calls open their socket on this thread, so
		// they act in the new network namespace.
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find loopback: %w", err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("bring loopback up: %w", err)
		}
	}
	for kind, target := range targets {
		if err := unix.Mount("/proc/thread-self/ns/"+kind, target, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pin %s namespace at %s: %w", kind, target, err)
		}
	}
	return nil
}

func pathsOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	return out
}

// createMountTarget makes the empty file a namespace is bind-mounted onto.
func createMountTarget(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return err
	}
	return f.Close()
}

// Unpin unmounts and removes namespace files. It is idempotent: files that
// are already unmounted or gone are not an error.
func Unpin(paths ...string) error {
	var errs []error
	for _, p := range paths {
		if p == "" {
			continue
		}
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// IsPinned reports whether path is a live namespace bind mount.
func IsPinned(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	// Namespace files live on nsfs.
	return st.Type == unix.NSFS_MAGIC
}

// PrepareNetnsDir makes dir a shared mount point in a peer group of its
// own, so that pins made later propagate into mount namespaces copied from
// the host after the directory was set up (as `ip netns add` intends), and
// only there. A plain bind of dir onto itself joins the peer group of the
// mount it sits on when that one is shared (/ usually is): every pin would
// then be mounted twice, once on dir and once, hidden, on the parent, so
// each pod's netns cost two host mounts, and every mount on the host slows
// each later container's start (runc copies the whole mount table into the
// container's namespace and detaches it again). So the bind is made
// private before it is shared. A dir already mounted in its parent's peer
// group (an older floe, or a bind made by hand) is moved to a group of its
// own when nothing is pinned under it yet; with pins under it, moving it
// would leave their hidden copies mounted for ever, so it is left as it is
// and the caller is told.
func PrepareNetnsDir(dir string) (warning string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", dir, err)
	}
	self, parent, under, err := mountsAt(resolved)
	if err != nil {
		return "", err
	}
	switch {
	case self == nil:
		if err := unix.Mount(resolved, resolved, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return "", fmt.Errorf("bind %s onto itself: %w", resolved, err)
		}
		if err := unix.Mount("", resolved, "none", unix.MS_PRIVATE, ""); err != nil {
			return "", fmt.Errorf("make %s private: %w", resolved, err)
		}
	case sharedGroup(self) != "" && parent != nil && sharedGroup(self) == sharedGroup(parent):
		if under > 0 {
			return fmt.Sprintf("%s shares the peer group of %s, so each pin under it is mounted twice; it is left as it is while %d pins are under it (unmount it once no pod uses it, and floe makes it anew)", resolved, parent.Mountpoint, under), nil
		}
		if err := unix.Mount("", resolved, "none", unix.MS_PRIVATE, ""); err != nil {
			return "", fmt.Errorf("make %s private: %w", resolved, err)
		}
	}
	if err := unix.Mount("", resolved, "none", unix.MS_SHARED, ""); err != nil {
		return "", fmt.Errorf("make %s a shared mount: %w", resolved, err)
	}
	return "", nil
}

// mountsAt finds, in this process's mount table, the topmost mount at dir,
// the mount it sits on and how many mounts are under dir.
func mountsAt(dir string) (self, parent *mountinfo.Info, under int, err error) {
	all, err := mountinfo.GetMounts(nil)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read mount table: %w", err)
	}
	byID := map[int]*mountinfo.Info{}
	for _, m := range all {
		byID[m.ID] = m
		switch {
		case m.Mountpoint == dir:
			// Mounts stacked at one path are listed in mount order.
			self = m
		case strings.HasPrefix(m.Mountpoint, dir+"/"):
			under++
		}
	}
	if self != nil {
		parent = byID[self.Parent]
	}
	return self, parent, under, nil
}

// sharedGroup is the "shared:N" tag of a mount, or "" when it is not shared.
func sharedGroup(m *mountinfo.Info) string {
	for _, f := range strings.Fields(m.Optional) {
		if strings.HasPrefix(f, "shared:") {
			return f
		}
	}
	return ""
}
