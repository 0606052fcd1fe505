package images

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/floe-cri/floe/internal/errdefs"
)

func TestCheckSubPath(t *testing.T) {
	for in, want := range map[string]string{"": "", ".": "", "etc": "etc", "usr/share/": "usr/share", "./a//b": "a/b"} {
		if got, err := CheckSubPath(in); err != nil || got != want {
			t.Errorf("CheckSubPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"/etc", "..", "../x", "a/../../b", "a/.."} {
		if _, err := CheckSubPath(bad); err == nil {
			t.Errorf("CheckSubPath(%q) accepted", bad)
		}
	}
}

func TestResolveSubPathStaysInTheImage(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	for _, d := range []string{"etc", "usr/share"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// An absolute link and a climbing link both mean the image's own
	// paths, as they would inside the container.
	if err := os.Symlink("/usr/share", filepath.Join(root, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../"+outside, filepath.Join(root, "climb")); err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(root)
	cases := map[string]string{
		"":           real,
		"etc":        filepath.Join(real, "etc"),
		"etc/passwd": filepath.Join(real, "etc", "passwd"),
		"abs":        filepath.Join(real, "usr", "share"),
	}
	for sub, want := range cases {
		if got, err := ResolveSubPath(root, sub); err != nil || got != want {
			t.Errorf("ResolveSubPath(%q) = %q, %v; want %q", sub, got, err, want)
		}
	}
	if _, err := ResolveSubPath(root, "climb"); errdefs.KindOf(err) != errdefs.KindNotFound {
		t.Errorf("a link climbing out of the image resolved: %v", err)
	}
	if _, err := ResolveSubPath(root, "missing"); errdefs.KindOf(err) != errdefs.KindNotFound {
		t.Errorf("missing sub path: %v", err)
	}
	if _, err := ResolveSubPath(root, "../x"); errdefs.KindOf(err) != errdefs.KindInvalidArgument {
		t.Errorf("escaping sub path: %v", err)
	}
}
