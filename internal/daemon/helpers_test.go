package daemon

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/ocifeatures"
	"github.com/floe-cri/floe/internal/userns"
)

func TestDropInDir(t *testing.T) {
	if got := DropInDir("/etc/floe/floe.toml"); got != "/etc/floe/floe.d" {
		t.Errorf("DropInDir = %q", got)
	}
	if got := DropInDir("floe.toml"); got != "floe.d" {
		t.Errorf("relative: %q", got)
	}
}

// User namespaces are offered only on handlers that answered their
// features probe, and only when the node supports them.
func TestEnableUserns(t *testing.T) {
	features := func() map[string]ocifeatures.Features {
		return map[string]ocifeatures.Features{
			"runc":   {Raw: json.RawMessage(`{}`), RecursiveReadOnlyMounts: true},
			"legacy": {},
		}
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	f := features()
	enableUserns(f, userns.Support{Enabled: false, Reason: "kernel too old"}, log)
	if f["runc"].UserNamespaces || f["legacy"].UserNamespaces {
		t.Errorf("unsupported node: %+v", f)
	}
	if !strings.Contains(logs.String(), "kernel too old") {
		t.Errorf("reason not logged: %s", logs.String())
	}

	logs.Reset()
	f = features()
	enableUserns(f, userns.Support{Enabled: true, Mechanism: "idmapped mounts"}, log)
	if !f["runc"].UserNamespaces || !f["runc"].RecursiveReadOnlyMounts {
		t.Errorf("probed handler: %+v", f["runc"])
	}
	if f["legacy"].UserNamespaces {
		t.Errorf("handler without a features answer got user namespaces")
	}
	if !strings.Contains(logs.String(), "handler=legacy") || !strings.Contains(logs.String(), `mechanism="idmapped mounts"`) {
		t.Errorf("log: %s", logs.String())
	}
}

// The allocator exists even without ranges, so the annotation asking for
// them is refused with the reason rather than ignored.
func TestLoadSubIDs(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "subuid")
	os.WriteFile(sub, []byte("other:100000:65536\nfloe:200000:131072\n"), 0o644)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	a := loadSubIDs(config.UsernsConfig{SubIDUser: "floe", SubUIDFile: sub, SubGIDFile: sub}, log)
	if st := a.Status(); !st.Available || st.UIDs != 131072 || st.GIDs != 131072 {
		t.Errorf("status = %+v", st)
	}
	if logs.Len() != 0 {
		t.Errorf("logged with ranges present: %s", logs.String())
	}

	a = loadSubIDs(config.UsernsConfig{SubIDUser: "nobody-here", SubUIDFile: sub, SubGIDFile: sub}, log)
	if a == nil {
		t.Fatal("no allocator without ranges")
	}
	if st := a.Status(); st.Available || !strings.Contains(st.Reason, `no ranges for user "nobody-here"`) {
		t.Errorf("status = %+v", st)
	}
	if !strings.Contains(logs.String(), "userns-mode=auto") {
		t.Errorf("unavailability not logged: %s", logs.String())
	}
}

func TestCriuFor(t *testing.T) {
	for path, want := range map[string]string{
		"/usr/bin/runc":        "/usr/sbin/criu",
		"/usr/local/sbin/runc": "/usr/sbin/criu",
		"/usr/bin/crun":        "",
		"/usr/bin/runsc":       "",
	} {
		if got := criuFor(config.Runtime{RuntimePath: path}, "/usr/sbin/criu"); got != want {
			t.Errorf("criuFor(%s) = %q, want %q", path, got, want)
		}
	}
}

func TestSandboxedHandlers(t *testing.T) {
	cfg := config.Default()
	cfg.Runtimes = map[string]config.Runtime{
		"runc":   {RuntimePath: "/usr/bin/runc"},
		"gvisor": {RuntimePath: "/usr/bin/runsc", RuntimeType: config.RuntimeTypeSandboxed},
	}
	got := sandboxedHandlers(cfg)
	if len(got) != 2 || got["runc"] || !got["gvisor"] {
		t.Errorf("sandboxedHandlers = %v", got)
	}
	// Only sandboxed handlers get a pod sandbox keeper.
	prs := podRuntimes(cfg, slog.New(slog.DiscardHandler))
	if len(prs) != 1 || prs["gvisor"] == nil {
		t.Errorf("podRuntimes = %v", prs)
	}
}

// besideFloe finds executables next to the running binary only.
func TestBesideFloe(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	dir := filepath.Dir(exe)
	log := slog.New(slog.DiscardHandler)
	for name, mode := range map[string]os.FileMode{"floe-test-exec": 0o755, "floe-test-plain": 0o644} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Skipf("cannot write beside the test binary: %v", err)
		}
		t.Cleanup(func() { os.Remove(p) })
	}
	os.Mkdir(filepath.Join(dir, "floe-test-dir"), 0o755)
	t.Cleanup(func() { os.Remove(filepath.Join(dir, "floe-test-dir")) })
	if got := besideFloe("floe-test-exec", log); got != filepath.Join(dir, "floe-test-exec") {
		t.Errorf("executable: %q", got)
	}
	for _, name := range []string{"floe-test-plain", "floe-test-dir", "floe-test-absent"} {
		if got := besideFloe(name, log); got != "" {
			t.Errorf("%s: %q, want none", name, got)
		}
	}
}
