package lsm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDetectAppArmor(t *testing.T) {
	root := t.TempDir()
	if ok, why := detectAppArmor(root); ok || !strings.Contains(why, "no AppArmor module") {
		t.Errorf("no module: %v %q", ok, why)
	}
	write(t, filepath.Join(root, apparmorParam), "N\n")
	if ok, why := detectAppArmor(root); ok || !strings.Contains(why, "securityfs") {
		t.Errorf("module, no securityfs: %v %q", ok, why)
	}
	if err := os.MkdirAll(filepath.Join(root, apparmorFS), 0o755); err != nil {
		t.Fatal(err)
	}
	if ok, why := detectAppArmor(root); ok || !strings.Contains(why, "is N") {
		t.Errorf("disabled by parameter: %v %q", ok, why)
	}
	write(t, filepath.Join(root, apparmorParam), "Y\n")
	if ok, why := detectAppArmor(root); !ok || why != "enabled" {
		t.Errorf("enabled: %v %q", ok, why)
	}
}

func TestProfileLoaded(t *testing.T) {
	dir := t.TempDir()
	if _, err := profileLoaded(dir, "x"); err == nil {
		t.Error("no profiles file: no error")
	}
	write(t, filepath.Join(dir, "profiles"), "cri-containerd.apparmor.d (enforce)\n/usr/bin/man (complain)\nwith space (x) (enforce)\n")
	for name, want := range map[string]bool{"cri-containerd.apparmor.d": true, "/usr/bin/man": true, "with space (x)": true, "crio-default": false, "cri-containerd": false} {
		if got, err := profileLoaded(dir, name); err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", name, got, err, want)
		}
	}
}

func TestHostString(t *testing.T) {
	h := Host{AppArmorStatus: "not enabled (no AppArmor module)", SELinuxStatus: "disabled"}
	if got := h.String(); got != "none (AppArmor: not enabled (no AppArmor module), SELinux: disabled)" {
		t.Errorf("none: %q", got)
	}
	h = Host{AppArmor: true, AppArmorStatus: "enabled", SELinux: true, SELinuxStatus: "permissive"}
	if got := h.String(); got != "AppArmor, SELinux (permissive) (AppArmor: enabled, SELinux: permissive)" {
		t.Errorf("both: %q", got)
	}
}

// This host's real answer: whatever it is, Detect must say why.
func TestDetectHost(t *testing.T) {
	h := Detect()
	if h.AppArmorStatus == "" || h.SELinuxStatus == "" || h.ProfileLoaded == nil || h.Labels == nil {
		t.Errorf("Detect left fields empty: %+v", h)
	}
	t.Logf("LSMs: %s", h)
}
