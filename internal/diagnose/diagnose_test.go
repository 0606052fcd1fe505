package diagnose

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floe-cri/floe/internal/cgroups"
	"github.com/floe-cri/floe/internal/checkpoint"
	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/handlerprobe"
	"github.com/floe-cri/floe/internal/network"
)

// fakeHost is a host whose files live in a temp dir. good selects a
// host that has everything (systemd, overlay, metacopy, userns, conmon).
type fakeHost struct {
	dir  string
	host Host
}

func newFakeHost(t *testing.T, good bool) *fakeHost {
	t.Helper()
	dir := t.TempDir()
	h := Host{
		SystemdDir:    filepath.Join(dir, "systemd"),
		Filesystems:   filepath.Join(dir, "filesystems"),
		MetacopyParam: filepath.Join(dir, "metacopy"),
		MaxUserNS:     filepath.Join(dir, "max_user_namespaces"),
		MonitorPath:   filepath.Join(dir, "conmon"),
	}
	if good {
		os.Mkdir(h.SystemdDir, 0o755)
		write(t, h.Filesystems, "nodev\tsysfs\nnodev\toverlay\n", 0o644)
		write(t, h.MetacopyParam, "N\n", 0o644)
		write(t, h.MaxUserNS, "63000\n", 0o644)
		write(t, h.MonitorPath, "#!/bin/sh\n", 0o755)
	} else {
		write(t, h.Filesystems, "nodev\tsysfs\n\text4\n", 0o644)
		write(t, h.MaxUserNS, "0\n", 0o644)
		write(t, h.MonitorPath, "not executable", 0o644)
	}
	return &fakeHost{dir: dir, host: h}
}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// runtimeScript is a runtime binary answering --version like runc.
func runtimeScript(t *testing.T, dir, name, script string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	write(t, p, "#!/bin/sh\n"+script+"\n", 0o755)
	return p
}

// cniManager returns a CNI manager with a usable config (ok) or none.
func cniManager(t *testing.T, dir string, ok bool) *network.Manager {
	t.Helper()
	conf, plugins := filepath.Join(dir, "cni"), filepath.Join(dir, "plugins")
	os.MkdirAll(conf, 0o755)
	os.MkdirAll(plugins, 0o755)
	if ok {
		write(t, filepath.Join(conf, "10-test.conflist"), `{"cniVersion":"1.0.0","name":"testnet","plugins":[{"type":"bridge"}]}`, 0o644)
		write(t, filepath.Join(plugins, "bridge"), "#!/bin/sh\n", 0o755)
	}
	return network.New(conf, []string{plugins}, filepath.Join(dir, "cache"))
}

func find(fs []Finding, item string) Finding {
	for _, f := range fs {
		if f.Item == item {
			return f
		}
	}
	return Finding{Item: item, Level: "absent"}
}

func TestRunHealthyHost(t *testing.T) {
	h := newFakeHost(t, true)
	cfg := config.Default()
	cfg.CgroupManager = "systemd"
	cfg.Network.CNIPluginDirs = []string{filepath.Join(h.dir, "plugins")}
	cfg.DefaultRuntime = "runc"
	cfg.Runtimes = map[string]config.Runtime{
		"runc": {RuntimePath: runtimeScript(t, h.dir, "runc", `echo "runc version 1.2.3"; echo "commit: x"`), RuntimeRoot: "/run/floe/runc"},
	}
	cg := &cgroups.Support{Mode: cgroups.ModeV2, Controllers: []string{"cpu", "memory", "pids"}, MemorySwap: true}
	probes := map[string]handlerprobe.Result{"runc": {Handler: "runc", Usable: true, Duration: 123 * time.Millisecond}}
	fs := Run(context.Background(), cfg, cniManager(t, h.dir, true), cg, h.host, probes)
	for _, f := range fs {
		if f.Level != OK {
			t.Errorf("healthy host: %+v", f)
		}
	}
	rt := find(fs, "runtime runc (default)")
	if !strings.Contains(rt.Detail, "runc version 1.2.3; state root: /run/floe/runc") || !strings.Contains(rt.Detail, "trial container made and deleted in 123ms") ||
		strings.Contains(rt.Detail, "commit") {
		t.Errorf("runtime finding: %+v", rt)
	}
	if f := find(fs, "CNI"); !strings.Contains(f.Detail, "10-test.conflist") {
		t.Errorf("CNI finding: %+v", f)
	}
	if f := find(fs, "user namespaces"); f.Detail != "enabled (max 63000)" {
		t.Errorf("userns finding: %+v", f)
	}
	if err := FatalError(fs); err != nil {
		t.Errorf("FatalError = %v", err)
	}
}

func TestRunBrokenHost(t *testing.T) {
	h := newFakeHost(t, false)
	cfg := config.Default()
	cfg.CgroupManager = "systemd" // but the host has no systemd
	cfg.DefaultRuntime = "runc"
	cfg.Runtimes = map[string]config.Runtime{
		"runc":   {RuntimePath: filepath.Join(h.dir, "missing-runc")},
		"crun":   {RuntimePath: runtimeScript(t, h.dir, "crun", "exit 3")},
		"kata":   {RuntimePath: runtimeScript(t, h.dir, "kata", "echo kata 3.0")},
		"gvisor": {RuntimePath: runtimeScript(t, h.dir, "runsc", "echo runsc 1")},
	}
	cg := &cgroups.Support{Mode: cgroups.ModeV2, Controllers: []string{"memory"}, HugepageSizes: []string{"2MB"}, Root: "/sys/fs/cgroup"}
	probes := map[string]handlerprobe.Result{"kata": {Handler: "kata", Usable: false, Error: "kata: no KVM"}}
	fs := Run(context.Background(), cfg, cniManager(t, h.dir, false), cg, h.host, probes)
	for item, want := range map[string]struct {
		level  Level
		detail string
	}{
		"runtime runc (default)": {Warn, "missing-runc is missing or not executable; install it or set runtimes.runc.runtime_path"},
		"runtime crun":           {Warn, "--version failed: exit status 3"},
		"runtime kata":           {Warn, `UNUSABLE: its trial container failed: kata: no KVM; pods asking for handler "kata" are refused`},
		"runtime gvisor":         {OK, "trial container still under way"},
		"monitor":                {Warn, "conmon not found at " + h.host.MonitorPath},
		"CNI":                    {Warn, "NetworkReady=false"},
		"cgroup hugetlb":         {Warn, "huge pages are refused"},
		"cgroup memory swap":     {Warn, "containers asking for swap are refused"},
		"cgroup driver":          {Fatal, `cgroup_manager is "systemd" but systemd is not running`},
		"overlayfs":              {Warn, "modprobe overlay"},
		"overlay metacopy":       {Warn, "not available"},
		"user namespaces":        {Warn, "disabled"},
	} {
		f := find(fs, item)
		if f.Level != want.level || !strings.Contains(f.Detail, want.detail) {
			t.Errorf("%s: %+v, want %s containing %q", item, f, want.level, want.detail)
		}
	}
	// Runtimes are reported in name order.
	if fs[0].Item != "runtime crun" || fs[3].Item != "runtime runc (default)" {
		t.Errorf("order: %s, %s", fs[0].Item, fs[3].Item)
	}
	err := FatalError(fs)
	if err == nil || !strings.Contains(err.Error(), "cannot start: cgroup driver: ") || strings.Contains(err.Error(), "overlayfs") {
		t.Errorf("FatalError = %v, want only the cgroup driver", err)
	}
}

// cgroupfs on a systemd host works but the kubelet must agree: a warning.
func TestCgroupDriverMismatch(t *testing.T) {
	h := newFakeHost(t, true)
	cfg := config.Default()
	cfg.CgroupManager = "cgroupfs"
	fs := checkCgroups(cfg, &cgroups.Support{Mode: cgroups.ModeV2, MemorySwap: true}, h.host)
	if f := find(fs, "cgroup driver"); f.Level != Warn || !strings.Contains(f.Detail, "cgroupDriver must also be cgroupfs") {
		t.Errorf("%+v", f)
	}
	os.Remove(h.host.SystemdDir)
	fs = checkCgroups(cfg, &cgroups.Support{Mode: cgroups.ModeV2, MemorySwap: true}, h.host)
	if f := find(fs, "cgroup driver"); f.Level != OK {
		t.Errorf("%+v", f)
	}
}

func TestCheckpointFinding(t *testing.T) {
	if f := Checkpoint(checkpoint.Support{Problem: "criu not found"}); f.Level != Warn || !strings.Contains(f.Detail, "unavailable: criu not found") {
		t.Errorf("%+v", f)
	}
	f := Checkpoint(checkpoint.Support{CRIUPath: "/usr/sbin/criu", Version: "3.19", RootOnly: true})
	if f.Level != OK || !strings.Contains(f.Detail, "criu 3.19 works (/usr/sbin/criu)") || !strings.Contains(f.Detail, "0:0") {
		t.Errorf("%+v", f)
	}
}

func TestFormat(t *testing.T) {
	out := Format([]Finding{{OK, "monitor", "/usr/bin/conmon"}, {Fatal, "cgroup driver", "broken"}})
	want := "floe startup checks:\n" +
		"  ok    monitor                /usr/bin/conmon\n" +
		"  FAIL  cgroup driver          broken\n"
	if out != want {
		t.Errorf("Format:\n%q\nwant\n%q", out, want)
	}
	if FatalError(nil) != nil {
		t.Error("no findings, no error")
	}
}
