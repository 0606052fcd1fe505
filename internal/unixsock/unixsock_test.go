package unixsock

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenCreatesDirAndSetsMode(t *testing.T) {
	for _, mode := range []os.FileMode{0o600, 0o660} {
		path := filepath.Join(t.TempDir(), "a", "b", "floe.sock")
		l, err := Listen(path, mode)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != mode {
			t.Errorf("mode %v: %v %v", mode, fi.Mode(), err)
		}
		serveOnce(t, l, path)
		l.Close()
	}
}

// serveOnce checks a client reaches l at path.
func serveOnce(t *testing.T, l net.Listener, path string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A socket left by a crashed daemon (file present, nobody listening) is
// replaced.
func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "floe.sock")
	old, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	l, err := Listen(path, 0o600)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer l.Close()
	serveOnce(t, l, path)
}

// A socket another live process serves is never taken over, and stays
// usable.
func TestListenRefusesLiveSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "floe.sock")
	live, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	go func() { // answer the liveness probe and any later dial
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	l, err := Listen(path, 0o600)
	if err == nil {
		l.Close()
		t.Fatal("took over a live socket")
	}
	if !strings.Contains(err.Error(), "served by another process") || !strings.Contains(err.Error(), path) {
		t.Errorf("err = %v", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("live socket broken by the attempt: %v", err)
	}
	c.Close()
}

func TestListenErrorsNameThePath(t *testing.T) {
	dir := t.TempDir()
	// A non-empty directory where the socket should be cannot be removed.
	path := filepath.Join(dir, "floe.sock")
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, 0o600); err == nil || !strings.Contains(err.Error(), "remove stale socket "+path) {
		t.Errorf("err = %v", err)
	}
	// The socket's directory cannot be created under a file.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := Listen(filepath.Join(file, "floe.sock"), 0o600); err == nil || !strings.Contains(err.Error(), "create socket dir") {
		t.Errorf("err = %v", err)
	}
}
