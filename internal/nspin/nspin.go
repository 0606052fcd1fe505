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

// PrepareNetnsDir makes dir a shared mount point, as `ip netns add` does, so
// that pins made later propagate into mount namespaces that were copied
// from the host after the directory was set up.
func PrepareNetnsDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) {
		// Not a mount point yet: bind it onto itself, then share it.
		if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s onto itself: %w", dir, err)
		}
		err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("make %s a shared mount: %w", dir, err)
	}
	return nil
}
