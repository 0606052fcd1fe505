package daemon

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floe-cri/floe/internal/cgroups"
	"github.com/floe-cri/floe/internal/config"
)

func TestContainerDefaultsCheckTheHostNamingTheKey(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"defaultAction":"SCMP_ACT_NOPE"}`), 0o644)
	noPids := &cgroups.Support{Mode: cgroups.ModeV1, Controllers: []string{"cpu", "memory"}}
	cases := []struct {
		name string
		set  func(*config.ContainersConfig)
		cg   *cgroups.Support
		want string
	}{
		{"unknown sysctl", func(c *config.ContainersConfig) { c.DefaultSysctls = []string{"net.ipv4.no_such_sysctl=1"} }, nil,
			`key "containers.default_sysctls": "net.ipv4.no_such_sysctl"`},
		{"nofile above nr_open", func(c *config.ContainersConfig) { c.DefaultUlimits = []string{"nofile=1024:-1"} }, nil,
			`key "containers.default_ulimits": RLIMIT_NOFILE hard limit unlimited`},
		{"seccomp file", func(c *config.ContainersConfig) { c.SeccompProfile = bad }, nil,
			`key "containers.seccomp_profile": ` + bad + `: defaultAction "SCMP_ACT_NOPE"`},
		{"absent seccomp file", func(c *config.ContainersConfig) { c.SeccompProfile = filepath.Join(dir, "absent.json") }, nil,
			`key "containers.seccomp_profile": ` + filepath.Join(dir, "absent.json")},
		{"pids without controller", func(c *config.ContainersConfig) { c.PidsLimit = 100 }, noPids,
			`key "containers.pids_limit": 100 cannot be applied: the pids controller is not available`},
	}
	for _, c := range cases {
		cfg := config.Default()
		cfg.Containers.HooksDir = nil
		c.set(&cfg.Containers)
		_, err := newContainerDefaults(cfg, c.cg, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}

	// The built-in defaults check out on this host, and a bad reload
	// keeps them.
	var logs bytes.Buffer
	cfg := config.Default()
	cfg.Containers.HooksDir = nil
	d, err := newContainerDefaults(cfg, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("built-in defaults: %v", err)
	}
	before := d.Get()
	if before.Sysctls["net.ipv4.ip_unprivileged_port_start"] != "0" || before.SeccompProfile != nil {
		t.Errorf("built-in defaults: %+v", before)
	}
	cfg.Containers.SeccompProfile = bad
	d.Reload(cfg)
	if d.Get() != before || !strings.Contains(logs.String(), "container defaults not reloaded") || !strings.Contains(logs.String(), bad) {
		t.Errorf("bad reload replaced the defaults or was not logged:\n%s", logs.String())
	}
	cfg.Containers.SeccompProfile = ""
	cfg.Containers.PidsLimit = 7
	d.Reload(cfg)
	if d.Get().PidsLimit != 7 {
		t.Errorf("good reload not applied: %+v", d.Get())
	}
}
