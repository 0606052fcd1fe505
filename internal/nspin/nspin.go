// Package nspin creates a pod's network, IPC and UTS namespaces and pins
// each one to a file with a bind mount, so they outlive the process that
// created them and need no pause container. It is floe's equivalent of
// CRI-O's pinns: floe re-executes itself as a short-lived helper that is
// born in the new namespaces (clone flags), sets the hostname, brings up
// loopback, bind-mounts /proc/self/ns/<kind> onto the requested files and
// exits. Containers later join the namespaces by path.
package nspin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// HelperArg is the hidden first argument that makes the floe binary act as
// the pinning helper. cmd/floe dispatches on it before anything else runs.
const HelperArg = "__floe-pin-namespaces"

// Request says which namespaces to create and where to pin them. An empty
// path means that namespace is not created (the pod uses the host's).
type Request struct {
	NetPath  string
	IPCPath  string
	UTSPath  string
	Hostname string // set in the new UTS namespace
}

// Pin creates and pins the requested namespaces. On error nothing is left
// mounted or created.
func Pin(ctx context.Context, req Request) error {
	var flags uintptr
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
	args := []string{HelperArg}
	for _, kind := range []string{"net", "ipc", "uts"} {
		if p, ok := targets[kind]; ok {
			args = append(args, kind+"="+p)
		}
	}
	if req.UTSPath != "" && req.Hostname != "" {
		args = append(args, "hostname="+req.Hostname)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/proc/self/exe", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags, Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		Unpin(pathsOf(targets)...)
		return fmt.Errorf("namespace helper: %w: %s", err, strings.TrimSpace(stderr.String()))
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
