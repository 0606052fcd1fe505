package checkpoint

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/floe-cri/floe/internal/errdefs"
)

func stageArchive(t *testing.T) string {
	t.Helper()
	stage := t.TempDir()
	if err := WriteJSON(stage, ConfigFile, Config{Format: FormatVersion, Runtime: "floe", ID: "abc", ImageID: "img", Container: json.RawMessage(`{"name":"c"}`)}); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{SpecFile: "{}", StatusFile: "{}", "checkpoint/inventory.img": "criu", "checkpoint/pages-1.img": strings.Repeat("p", 10000)} {
		p := filepath.Join(stage, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return stage
}

func TestArchiveRoundTrip(t *testing.T) {
	stage := stageArchive(t)
	out := filepath.Join(t.TempDir(), "c.tar")
	size, err := WriteArchive(stage, out)
	if err != nil || size < 10000 {
		t.Fatalf("WriteArchive = %d, %v", size, err)
	}
	if !IsArchive(out) {
		t.Fatal("IsArchive of a written archive is false")
	}
	cfg, err := ReadArchiveConfig(out)
	if err != nil || cfg.ID != "abc" {
		t.Fatalf("ReadArchiveConfig = %+v, %v", cfg, err)
	}
	dst := t.TempDir()
	cfg, err = Extract(out, dst)
	if err != nil || cfg.ID != "abc" {
		t.Fatalf("Extract = %+v, %v", cfg, err)
	}
	if data, err := os.ReadFile(filepath.Join(dst, "checkpoint/pages-1.img")); err != nil || len(data) != 10000 {
		t.Fatalf("extracted pages: %d bytes, %v", len(data), err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestWriteArchiveFailureLeavesNothing(t *testing.T) {
	stage := stageArchive(t)
	if err := syscall.Mkfifo(filepath.Join(stage, "checkpoint", "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := WriteArchive(stage, filepath.Join(dir, "c.tar")); err == nil {
		t.Fatal("a fifo was archived")
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("a failed archive left %v", left)
	}
}

func TestNotACheckpoint(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.tar")
	os.WriteFile(junk, []byte("not a tar"), 0o600)
	if IsArchive(junk) {
		t.Fatal("junk is an archive")
	}
	if _, err := ReadArchiveConfig(junk); errdefs.KindOf(err) != errdefs.KindInvalidArgument {
		t.Fatalf("ReadArchiveConfig(junk) = %v", err)
	}
	// A tar escaping its directory.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: ConfigFile, Typeflag: tar.TypeReg, Size: 2, Mode: 0o600})
	tw.Write([]byte("{}"))
	tw.WriteHeader(&tar.Header{Name: "../escape", Typeflag: tar.TypeReg, Size: 1, Mode: 0o600})
	tw.Write([]byte("x"))
	tw.Close()
	evil := filepath.Join(dir, "evil.tar")
	os.WriteFile(evil, buf.Bytes(), 0o600)
	dst := filepath.Join(dir, "dst")
	os.Mkdir(dst, 0o700)
	if _, err := Extract(evil, dst); errdefs.KindOf(err) != errdefs.KindInvalidArgument || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("Extract(evil) = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "escape")); err == nil {
		t.Fatal("an entry escaped the extraction directory")
	}
}

func TestRootfsDiffRoundTripStaysInsideTheRootfs(t *testing.T) {
	src, dst, host := t.TempDir(), t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "data/sub"), 0o750))
	must(os.WriteFile(filepath.Join(src, "data/sub/f"), []byte("content"), 0o640))
	must(os.Symlink("/etc/passwd", filepath.Join(src, "data/link")))
	// In the source rootfs, "esc" points at a host directory: archiving
	// must read the rootfs's own /<host>, not the host's.
	must(os.Symlink(host, filepath.Join(src, "esc")))
	must(os.WriteFile(filepath.Join(host, "secret"), []byte("host secret"), 0o600))
	// The destination has what the image had: a file the container
	// deleted, and a symlink to "/" a write must not follow out.
	must(os.MkdirAll(filepath.Join(dst, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(dst, "etc/group"), []byte("x"), 0o644))
	must(os.Symlink("/", filepath.Join(dst, "data")))

	work := t.TempDir()
	diff, deleted := filepath.Join(work, RootfsDiffFile), filepath.Join(work, DeletedFile)
	must(WriteRootfsDiff(src, []string{"/data", "/data/sub", "/data/sub/f", "/data/link", "/esc/secret"}, []string{"/etc/group"}, diff, deleted))
	must(ApplyRootfsDiff(dst, diff, deleted))
	if data, err := os.ReadFile(filepath.Join(dst, "data/sub/f")); err != nil || string(data) != "content" {
		t.Fatalf("restored file = %q, %v", data, err)
	}
	if st, err := os.Lstat(filepath.Join(dst, "data")); err != nil || !st.IsDir() {
		t.Fatalf("the symlink the image had is not replaced by the directory: %v %v", st, err)
	}
	if st, _ := os.Stat(filepath.Join(dst, "data/sub/f")); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", st.Mode())
	}
	if l, err := os.Readlink(filepath.Join(dst, "data/link")); err != nil || l != "/etc/passwd" {
		t.Errorf("symlink = %q, %v", l, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "etc/group")); !os.IsNotExist(err) {
		t.Errorf("deleted file is back: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, host, "secret")); err == nil {
		t.Error("a host file reached the archive through a rootfs symlink")
	}
}
