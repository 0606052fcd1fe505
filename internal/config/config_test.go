package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsValidateAndRenderRoundTrip(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	out, err := cfg.Render()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`socket = '/run/floe/floe.sock'`, "# Cgroup driver", `shm_size = '64Mi'`, "[runtimes.runc]"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rendered config lacks %q:\n%s", want, out)
		}
	}
	dir := t.TempDir()
	p := write(t, dir, "floe.toml", string(out))
	back, err := Load(p, true, "")
	if err != nil {
		t.Fatalf("rendered config does not load back: %v", err)
	}
	again, _ := back.Render()
	if string(again) != string(out) {
		t.Errorf("render is not stable:\n%s\n---\n%s", out, again)
	}
}

func TestDropInsApplyInNameOrderAndKeepUnsetKeys(t *testing.T) {
	dir := t.TempDir()
	main := write(t, dir, "floe.toml", "log_level = \"debug\"\n[sandbox]\nshm_size = \"128Mi\"\n")
	write(t, dir, "floe.d/20-b.toml", "log_level = \"error\"\n")
	write(t, dir, "floe.d/10-a.toml", "log_level = \"warn\"\n[runtimes.runc]\nruntime_root = \"/run/other\"\n[runtimes.kata]\nruntime_path = \"/usr/bin/kata\"\n")
	cfg, err := Load(main, true, filepath.Join(dir, "floe.d"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LogLevel != "error" {
		t.Errorf("log_level = %q, want the last drop-in's value", cfg.LogLevel)
	}
	if cfg.Sandbox.ShmSize != 128<<20 {
		t.Errorf("shm_size = %d", cfg.Sandbox.ShmSize)
	}
	if cfg.Sandbox.CreateTimeout.Std().Minutes() != 4 {
		t.Errorf("unset key lost its default: %v", cfg.Sandbox.CreateTimeout.Std())
	}
	if rt := cfg.Runtimes["runc"]; rt.RuntimePath != "/usr/sbin/runc" || rt.RuntimeRoot != "/run/other" {
		t.Errorf("runc handler = %+v", rt)
	}
	if _, ok := cfg.Runtimes["kata"]; !ok {
		t.Errorf("kata handler missing")
	}
}

func TestBadConfigNamesFileAndKey(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"unknown = 1\n":                                         `unknown key "unknown"`,
		"[network]\ncni_dir = \"/x\"\n":                         `unknown key "network.cni_dir"`,
		"cgroup_manager = \"cgroupv2\"\n":                       `key "cgroup_manager": "cgroupv2" is not allowed; use "cgroupfs" or "systemd"`,
		"state_dir = \"rel\"\n":                                 `key "state_dir": "rel" is not an absolute path`,
		"[sandbox]\nshm_size = \"lots\"\n":                      `sandbox.shm_size`,
		"[sandbox]\ncreate_timeout = \"soon\"\n":                `sandbox.create_timeout`,
		"default_runtime = \"kata\"\n":                          `key "default_runtime": "kata" is not a configured handler; configured: runc`,
		"log_level = 3\n":                                       `log_level`,
		"[storage]\ndriver = \"btrfs\"\n":                       `key "storage.driver": "btrfs" is not allowed`,
		"[storage]\nroot = \"rel\"\n":                           `key "storage.root": "rel" is not an absolute path`,
		"[storage]\nmount_options = [\"a,b\"]\n":                `key "storage.mount_options"`,
		"[images]\npull_progress_timeout = \"0s\"\n":            `key "images.pull_progress_timeout"`,
		"[images]\npinned = [\"a*b\"]\n":                        `key "images.pinned"`,
		"[registries]\ndefault_search_registries = [\"a/b\"]\n": `key "registries.default_search_registries"`,
		"[apparmor]\ndefault_profile = \"unconfined\"\n":        `key "apparmor.default_profile": "unconfined" is not allowed`,
		"[apparmor]\ndefault_profile = \" x\"\n":                `key "apparmor.default_profile"`,
	}
	for body, want := range cases {
		p := write(t, dir, "bad.toml", body)
		_, err := Load(p, true, "")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) {
			t.Errorf("config %q: error %v, want it to name %s and contain %q", body, err, p, want)
		}
	}
}

func TestMissingFiles(t *testing.T) {
	if _, err := Load("/nonexistent/floe.toml", false, "/nonexistent/floe.d"); err != nil {
		t.Errorf("missing default file must be fine: %v", err)
	}
	if _, err := Load("/nonexistent/floe.toml", true, ""); err == nil {
		t.Errorf("missing explicit file must fail")
	}
}

func TestApplyFlag(t *testing.T) {
	cfg := Default()
	if err := cfg.ApplyFlag("cni-plugin-dirs", "/a:/b"); err != nil || len(cfg.Network.CNIPluginDirs) != 2 {
		t.Fatalf("cni-plugin-dirs: %v %v", err, cfg.Network.CNIPluginDirs)
	}
	if err := cfg.ApplyFlag("cgroup-manager", "bogus"); err == nil || !strings.Contains(err.Error(), "--cgroup-manager") {
		t.Errorf("bad flag value: %v", err)
	}
}

func TestSize(t *testing.T) {
	for in, want := range map[string]Size{"4096": 4096, "64Mi": 64 << 20, "1G": 1e9, "2Ki": 2048} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v", in, got, err)
		}
	}
	if _, err := ParseSize("-1"); err == nil {
		t.Errorf("negative size accepted")
	}
}

func TestRuntimeTypes(t *testing.T) {
	for typ, ok := range map[string]bool{"": true, "oci": true, RuntimeTypeSandboxed: true, "vm": false} {
		cfg := Default()
		cfg.Runtimes["runsc"] = Runtime{RuntimePath: "/usr/bin/runsc", RuntimeType: typ}
		err := cfg.Validate()
		if (err == nil) != ok || (err != nil && !strings.Contains(err.Error(), "runtimes.runsc.runtime_type")) {
			t.Errorf("runtime_type %q: %v", typ, err)
		}
		if cfg.Runtimes["runsc"].Sandboxed() != (typ == RuntimeTypeSandboxed) {
			t.Errorf("runtime_type %q: Sandboxed() wrong", typ)
		}
	}
}

func TestContainerDefaults(t *testing.T) {
	out, err := Default().Render()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`default_sysctls = ['net.ipv4.ip_unprivileged_port_start=0', 'net.ipv4.ping_group_range=0 2147483647']`,
		`default_ulimits = []`, `pids_limit = 0`, `seccomp_profile = ''`,
		`hooks_dir = ['/usr/share/containers/oci/hooks.d', '/etc/containers/oci/hooks.d']`,
		"# Namespaced sysctls", "CRI-O's syntax", "0 or -1 means unlimited", "docker/moby JSON format", "oci-hooks(5)",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rendered config lacks %q", want)
		}
	}
	dir := t.TempDir()
	good := write(t, dir, "good.toml", "[containers]\ndefault_sysctls = [\"net/core/somaxconn=1024\", \"kernel.shm_rmid_forced=1\"]\n"+
		"default_ulimits = [\"nofile=1024:2048\", \"core=-1\"]\npids_limit = -1\nseccomp_profile = \"/etc/floe/seccomp.json\"\nhooks_dir = []\n")
	cfg, err := Load(good, true, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Containers.PidsLimit != -1 || len(cfg.Containers.HooksDir) != 0 || len(cfg.Containers.DefaultUlimits) != 2 {
		t.Errorf("containers = %+v", cfg.Containers)
	}
	cases := map[string]string{
		"default_sysctls = [\"vm.swappiness=1\"]\n":                    `key "containers.default_sysctls": "vm.swappiness=1": vm.swappiness is not a namespaced sysctl`,
		"default_sysctls = [\"net.ipv4.ip_forward\"]\n":                `key "containers.default_sysctls": "net.ipv4.ip_forward" is not name=value`,
		"default_ulimits = [\"nofile=2048:1024\"]\n":                   `key "containers.default_ulimits": "nofile=2048:1024"`,
		"default_ulimits = [\"openfiles=1\"]\n":                        `key "containers.default_ulimits": "openfiles=1": invalid ulimit type`,
		"pids_limit = -2\n":                                            `key "containers.pids_limit": -2 is not allowed`,
		"seccomp_profile = \"seccomp.json\"\n":                         `key "containers.seccomp_profile": "seccomp.json" is not an absolute path`,
		"hooks_dir = [\"/etc/containers/oci/hooks.d\", \"hooks.d\"]\n": `key "containers.hooks_dir": "hooks.d" is not an absolute path`,
	}
	for body, want := range cases {
		p := write(t, dir, "bad.toml", "[containers]\n"+body)
		if _, err := Load(p, true, ""); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: error %v, want it to name %s and contain %q", body, err, p, want)
		}
	}
}
