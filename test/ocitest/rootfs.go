// Package ocitest builds what integration tests need to run real
// containers: small root filesystems made from the
// host's statically linked busybox (Debian busybox-static), and bundles
// whose config.json comes from internal/ocispec. Integration
// tests need no image registry.
package ocitest

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floe-cri/floe/test/needs"
)

// BusyboxPath is the static busybox the rootfs is made from.
const BusyboxPath = "/bin/busybox"

// Passwd and Group are written into every rootfs: root, nobody, and an
// unprivileged "app" user (1000) who is also in group "video" (44).
const (
	Passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	Group  = "root:x:0:\nvideo:x:44:app\napp:x:1000:\nnogroup:x:65534:\n"
)

// Busybox builds a rootfs in a new temporary directory of t and returns
// its path: busybox with every applet linked, /etc/passwd and /etc/group,
// and the empty directories runc mounts onto. It skips the test when the
// host has no static busybox.
func Busybox(t testing.TB) string {
	t.Helper()
	needs.File(t, BusyboxPath, "busybox-static ("+BusyboxPath+")")
	dir, err := os.MkdirTemp("", "floe-rootfs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := Build(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Build fills dir with the busybox rootfs.
func Build(dir string) error {
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "home/app"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	if err := copyFile(BusyboxPath, filepath.Join(dir, "bin/busybox")); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, BusyboxPath, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("busybox --list-full: %w", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		link := filepath.Join(dir, applet)
		if applet == "bin/busybox" {
			continue
		}
		if err := os.Symlink("/bin/busybox", link); err != nil && !os.IsExist(err) {
			return err
		}
	}
	for name, content := range map[string]string{"etc/passwd": Passwd, "etc/group": Group, "etc/hosts": "127.0.0.1 localhost\n", "etc/resolv.conf": "", "etc/hostname": "rootfs\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
