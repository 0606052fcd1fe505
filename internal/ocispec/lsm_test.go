package ocispec

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/floe-cri/floe/internal/errdefs"
)

func TestBuildLSM(t *testing.T) {
	c := baseContainer(t)
	vol := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(vol, link); err != nil {
		t.Fatal(err)
	}
	c.Mounts = []Mount{
		{ContainerPath: "/a", HostPath: link, SELinuxRelabel: true},
		{ContainerPath: "/b", HostPath: t.TempDir()},
	}
	c.LSM = LSM{AppArmorProfile: "my-profile", SELinuxLabel: "system_u:system_r:container_t:s0:c1,c2", MountLabel: "system_u:object_r:container_file_t:s0:c1,c2"}
	var relabeled []string
	opts := testOptions()
	opts.Relabel = func(path, label string) error {
		if label != c.LSM.MountLabel {
			t.Errorf("relabel %s with %q", path, label)
		}
		relabeled = append(relabeled, path)
		return nil
	}
	s, err := Build(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s.Process.ApparmorProfile != "my-profile" || s.Process.SelinuxLabel != c.LSM.SELinuxLabel || s.Linux.MountLabel != c.LSM.MountLabel {
		t.Errorf("spec: apparmor %q selinux %q mount label %q", s.Process.ApparmorProfile, s.Process.SelinuxLabel, s.Linux.MountLabel)
	}
	if !slices.Equal(relabeled, []string{vol}) {
		t.Errorf("relabeled %v, want only %s (the symlink resolved)", relabeled, vol)
	}

	// A system directory is refused, not relabelled.
	c.Mounts = []Mount{{ContainerPath: "/etc-host", HostPath: "/etc", SELinuxRelabel: true}}
	relabeled = nil
	if _, err := Build(c, opts); errdefs.KindOf(err) != errdefs.KindInvalidArgument || len(relabeled) != 0 {
		t.Errorf("relabel of /etc: %v, relabeled %v", err, relabeled)
	}

	// A relabel failure fails the build.
	c.Mounts = []Mount{{ContainerPath: "/a", HostPath: vol, SELinuxRelabel: true}}
	opts.Relabel = func(string, string) error { return errors.New("chcon: boom") }
	if _, err := Build(c, opts); err == nil {
		t.Error("relabel failure ignored")
	}

	// No mount label (no SELinux): nothing relabelled, nothing in the spec.
	c.LSM = LSM{}
	opts.Relabel = func(path, _ string) error { t.Errorf("relabel %s without a label", path); return nil }
	s, err = Build(c, opts)
	if err != nil || s.Process.ApparmorProfile != "" || s.Process.SelinuxLabel != "" || s.Linux.MountLabel != "" {
		t.Errorf("no LSM: %v %+v", err, s.Process)
	}
}
