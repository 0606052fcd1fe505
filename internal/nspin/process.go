package nspin

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// PinProcess pins the namespaces of process pid instead of unsharing new
// ones: the way for a pod in a user namespace. A multithreaded process like
// floe cannot enter a new user namespace, and namespaces it unshares would
// belong to the host's, where the pod's root has no rights (no sysctls, no
// sysfs, no joining them after runc entered the user namespace). So the pod
// init is cloned into all of them at once, and they are pinned from it.
// req.UserPath receives the user namespace. On error nothing is left.
func PinProcess(pid int, req Request) error {
	targets := map[string]string{}
	for kind, p := range map[string]string{"user": req.UserPath, "net": req.NetPath, "ipc": req.IPCPath, "uts": req.UTSPath} {
		if p != "" {
			targets[kind] = p
		}
	}
	for kind, p := range targets {
		if err := createMountTarget(p); err != nil {
			Unpin(pathsOf(targets)...)
			return fmt.Errorf("prepare %s namespace file: %w", kind, err)
		}
		src := fmt.Sprintf("/proc/%d/ns/%s", pid, kind)
		if err := unix.Mount(src, p, "none", unix.MS_BIND, ""); err != nil {
			Unpin(pathsOf(targets)...)
			return fmt.Errorf("pin %s namespace at %s: %w", kind, p, err)
		}
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread enters the pod's namespaces, so it
		// must end with this goroutine.
		done <- setupJoined(req)
	}()
	if err := <-done; err != nil {
		Unpin(pathsOf(targets)...)
		return err
	}
	return nil
}

// setupJoined enters the pinned UTS and network namespaces on a discarded
// thread to set the hostname and bring loopback up. floe, root on the
// host, is privileged over namespaces owned by any user namespace.
func setupJoined(req Request) error {
	if req.UTSPath != "" && req.Hostname != "" {
		if err := enter(req.UTSPath, unix.CLONE_NEWUTS); err != nil {
			return err
		}
		if err := unix.Sethostname([]byte(req.Hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", req.Hostname, err)
		}
	}
	if req.NetPath != "" {
		if err := enter(req.NetPath, unix.CLONE_NEWNET); err != nil {
			return err
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find loopback: %w", err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("bring loopback up: %w", err)
		}
	}
	return nil
}

func enter(path string, kind int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), kind); err != nil {
		return fmt.Errorf("enter namespace %s: %w", path, err)
	}
	return nil
}

// SetNetSysctl writes one sysctl of the network namespace pinned at
// netnsPath (key in dotted form, e.g. net.ipv4.ip_unprivileged_port_start),
// from a discarded thread that enters it: /proc/sys/net shows the
// namespace of the thread that opens it.
func SetNetSysctl(netnsPath, key, value string) error {
	if !strings.HasPrefix(key, "net.") || strings.Contains(key, "..") || strings.Contains(key, "/") {
		return fmt.Errorf("%q is no network sysctl", key)
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread enters the pod's network
		// namespace, so it must end with this goroutine.
		if err := enter(netnsPath, unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			done <- fmt.Errorf("set %s in %s: %w", key, netnsPath, err)
			return
		}
		done <- nil
	}()
	return <-done
}
