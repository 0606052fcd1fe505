package config

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/floe-cri/floe/internal/ocispec"
	"github.com/floe-cri/floe/internal/podannotations"
)

// Validate checks every value and names the first key that is wrong and
// what it allows.
func (c *Config) Validate() error {
	abs := map[string]string{
		"socket":                 c.Socket,
		"state_dir":              c.StateDir,
		"run_dir":                c.RunDir,
		"network.cni_config_dir": c.Network.CNIConfigDir,
		"network.netns_dir":      c.Network.NetnsDir,
		"storage.root":           c.Storage.Root,
		"storage.run_root":       c.Storage.RunRoot,
		"registries.config_path": c.Registries.ConfigPath,
		"registries.config_dir":  c.Registries.ConfigDir,
	}
	if c.InspectSocket != "" && !filepath.IsAbs(c.InspectSocket) {
		return fmt.Errorf("key \"inspect_socket\": %q is not an absolute path (or empty for run_dir/inspect.sock)", c.InspectSocket)
	}
	for _, key := range sortedKeys(abs) {
		if !filepath.IsAbs(abs[key]) {
			return fmt.Errorf("key %q: %q is not an absolute path", key, abs[key])
		}
	}
	if c.Metrics.Address != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Address); err != nil {
			return fmt.Errorf("key \"metrics.address\": %q is not host:port (for example \"127.0.0.1:9537\"), or empty to disable", c.Metrics.Address)
		}
	}
	if _, _, err := net.SplitHostPort(c.Streaming.Address); err != nil {
		return fmt.Errorf("key \"streaming.address\": %q is not host:port (for example \"127.0.0.1:0\")", c.Streaming.Address)
	}
	if (c.Streaming.TLSCertFile == "") != (c.Streaming.TLSKeyFile == "") {
		return fmt.Errorf("key \"streaming.tls_cert_file\" and \"streaming.tls_key_file\": set both or neither")
	}
	if len(c.Network.CNIPluginDirs) == 0 {
		return fmt.Errorf("key \"network.cni_plugin_dirs\": at least one directory is required")
	}
	for _, d := range c.Network.CNIPluginDirs {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("key \"network.cni_plugin_dirs\": %q is not an absolute path", d)
		}
	}
	switch c.CgroupManager {
	case "cgroupfs", "systemd":
	default:
		return fmt.Errorf("key \"cgroup_manager\": %q is not allowed; use \"cgroupfs\" or \"systemd\"", c.CgroupManager)
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		return fmt.Errorf("key \"log_level\": %w", err)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("key \"log_format\": %q is not allowed; use \"text\" or \"json\"", c.LogFormat)
	}
	if c.Sandbox.ShmSize < 4096 {
		return fmt.Errorf("key \"sandbox.shm_size\": %d bytes is too small; at least 4096", c.Sandbox.ShmSize)
	}
	if c.Sandbox.AbandonedGrace <= 0 {
		return fmt.Errorf("key \"sandbox.abandoned_grace\": must be a positive duration such as \"5m\"")
	}
	if c.Sandbox.CreateTimeout <= 0 {
		return fmt.Errorf("key \"sandbox.create_timeout\": must be a positive duration such as \"4m\"")
	}
	if err := c.validateRuntimes(); err != nil {
		return err
	}
	if err := c.validateImages(); err != nil {
		return err
	}
	if err := c.validateTracing(); err != nil {
		return err
	}
	if err := c.validateExtensions(); err != nil {
		return err
	}
	if err := c.validateContainers(); err != nil {
		return err
	}
	if _, ok := c.Runtimes[c.DefaultRuntime]; !ok {
		return fmt.Errorf("key \"default_runtime\": %q is not a configured handler; configured: %s", c.DefaultRuntime, strings.Join(sortedKeys(c.Runtimes), ", "))
	}
	return nil
}

// validateRuntimes checks the [runtimes] tables, in name order.
func (c *Config) validateRuntimes() error {
	if len(c.Runtimes) == 0 {
		return fmt.Errorf("key \"runtimes\": at least one runtime handler is required")
	}
	for _, name := range sortedKeys(c.Runtimes) {
		if err := validateRuntime(name, c.Runtimes[name]); err != nil {
			return err
		}
	}
	return nil
}

// validateRuntime checks the handler name and the table of one runtime.
func validateRuntime(name string, rt Runtime) error {
	if !handlerName.MatchString(name) {
		return fmt.Errorf("key \"runtimes.%s\": handler names must match %s", name, handlerName)
	}
	if !filepath.IsAbs(rt.RuntimePath) {
		return fmt.Errorf("key \"runtimes.%s.runtime_path\": %q is not an absolute path", name, rt.RuntimePath)
	}
	if rt.RuntimeRoot != "" && !filepath.IsAbs(rt.RuntimeRoot) {
		return fmt.Errorf("key \"runtimes.%s.runtime_root\": %q is not an absolute path", name, rt.RuntimeRoot)
	}
	if rt.MonitorPath != "" && !filepath.IsAbs(rt.MonitorPath) {
		return fmt.Errorf("key \"runtimes.%s.monitor_path\": %q is not an absolute path", name, rt.MonitorPath)
	}
	for i, a := range rt.RuntimeArgs {
		if !strings.HasPrefix(a, "-") {
			return fmt.Errorf("key \"runtimes.%s.runtime_args\": [%d] %q is not a flag", name, i, a)
		}
	}
	if rt.RuntimeType != "" && rt.RuntimeType != "oci" && rt.RuntimeType != RuntimeTypeSandboxed {
		return fmt.Errorf("key \"runtimes.%s.runtime_type\": %q is not allowed; \"oci\" or %q", name, rt.RuntimeType, RuntimeTypeSandboxed)
	}
	for _, a := range rt.AllowedAnnotations {
		if !podannotations.IsKnown(a) {
			return fmt.Errorf("key \"runtimes.%s.allowed_annotations\": %q is not an annotation floe honours; known: %s", name, a, strings.Join(podannotations.Known, ", "))
		}
	}
	return nil
}

// validateExtensions checks the [nri] and [cdi] tables.
func (c *Config) validateExtensions() error {
	paths := map[string]string{"nri.plugin_path": c.NRI.PluginPath, "nri.plugin_config_path": c.NRI.PluginConfigPath, "nri.socket_path": c.NRI.SocketPath}
	for _, key := range sortedKeys(paths) {
		if paths[key] != "" && !filepath.IsAbs(paths[key]) {
			return fmt.Errorf("key %q: %q is not an absolute path", key, paths[key])
		}
	}
	if c.NRI.RegistrationTimeout <= 0 {
		return fmt.Errorf("key \"nri.registration_timeout\": must be a positive duration such as \"5s\"")
	}
	if c.NRI.RequestTimeout <= 0 {
		return fmt.Errorf("key \"nri.request_timeout\": must be a positive duration such as \"2s\"")
	}
	for _, d := range c.CDI.SpecDirs {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("key \"cdi.spec_dirs\": %q is not an absolute path", d)
		}
	}
	if !filepath.IsAbs(c.Checkpoint.CRIUPath) {
		return fmt.Errorf("key \"checkpoint.criu_path\": %q is not an absolute path", c.Checkpoint.CRIUPath)
	}
	// "unconfined" is no profile: naming it would run RuntimeDefault
	// containers unconfined while looking configured.
	if p := c.AppArmor.DefaultProfile; strings.ContainsAny(p, "\x00\n") || strings.TrimSpace(p) != p || p == "unconfined" {
		return fmt.Errorf("key \"apparmor.default_profile\": %q is not allowed; name a loaded AppArmor profile (no surrounding spaces or newlines, not \"unconfined\"), or leave it empty", p)
	}
	return nil
}

// validateContainers checks the node-wide container defaults of the
// [containers] table. What depends on the host (a sysctl the kernel has, a
// profile file's content, the hard limits floe may raise) is checked when
// the daemon starts (see daemon.NodeDefaults).
func (c *Config) validateContainers() error {
	if _, err := ocispec.ParseDefaultSysctls(c.Containers.DefaultSysctls); err != nil {
		return fmt.Errorf("key \"containers.default_sysctls\": %w", err)
	}
	if _, err := ocispec.ParseUlimits(c.Containers.DefaultUlimits); err != nil {
		return fmt.Errorf("key \"containers.default_ulimits\": %w", err)
	}
	if c.Containers.PidsLimit < -1 {
		return fmt.Errorf("key \"containers.pids_limit\": %d is not allowed; a positive number of processes, or 0 or -1 for unlimited", c.Containers.PidsLimit)
	}
	if p := c.Containers.SeccompProfile; p != "" && !filepath.IsAbs(p) {
		return fmt.Errorf("key \"containers.seccomp_profile\": %q is not an absolute path (or empty for the built-in profile)", p)
	}
	for _, d := range c.Containers.HooksDir {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("key \"containers.hooks_dir\": %q is not an absolute path", d)
		}
	}
	return nil
}

// validateImages checks the [storage], [images] and [registries] tables.
func (c *Config) validateImages() error {
	switch c.Storage.Driver {
	case "overlay", "vfs":
	default:
		return fmt.Errorf("key \"storage.driver\": %q is not allowed; use \"overlay\" or \"vfs\"", c.Storage.Driver)
	}
	if c.Storage.Root == c.Storage.RunRoot {
		return fmt.Errorf("key \"storage.run_root\": must differ from storage.root (%q)", c.Storage.Root)
	}
	for _, o := range c.Storage.MountOptions {
		if o == "" || strings.ContainsAny(o, ", ") {
			return fmt.Errorf("key \"storage.mount_options\": %q is not one mount option; list each option as its own string", o)
		}
	}
	if c.Images.PullProgressTimeout <= 0 {
		return fmt.Errorf("key \"images.pull_progress_timeout\": must be a positive duration such as \"60s\"")
	}
	for key, p := range map[string]string{
		"images.auth_file":         c.Images.AuthFile,
		"images.signature_policy":  c.Images.SignaturePolicy,
		"registries.override_path": c.Registries.OverridePath,
	} {
		if p != "" && !filepath.IsAbs(p) {
			return fmt.Errorf("key %q: %q is not an absolute path", key, p)
		}
	}
	for _, p := range c.Images.Pinned {
		if p == "" || strings.ContainsAny(p, " \t") || strings.Contains(strings.TrimSuffix(p, "*"), "*") {
			return fmt.Errorf("key \"images.pinned\": %q is not an image name or a prefix ending in \"*\"", p)
		}
	}
	for _, r := range c.Registries.DefaultSearchRegistries {
		if r == "" || strings.ContainsAny(r, "/ \t") {
			return fmt.Errorf("key \"registries.default_search_registries\": %q is not a registry host[:port]", r)
		}
	}
	return nil
}

// handlerName is what a RuntimeClass handler may be called (a DNS label).
var handlerName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ApplyFlag sets the option behind a command-line flag, validating it as a
// file value would be.
func (c *Config) ApplyFlag(flag, value string) error {
	switch flag {
	case "socket":
		c.Socket = value
	case "state-dir":
		c.StateDir = value
	case "run-dir":
		c.RunDir = value
	case "cni-config-dir":
		c.Network.CNIConfigDir = value
	case "cni-plugin-dirs":
		c.Network.CNIPluginDirs = filepath.SplitList(value)
	case "cgroup-manager":
		c.CgroupManager = value
	case "log-level":
		c.LogLevel = value
	case "log-format":
		c.LogFormat = value
	case "netns-dir":
		c.Network.NetnsDir = value
	case "inspect-socket":
		c.InspectSocket = value
	case "metrics-address":
		c.Metrics.Address = value
		c.MetricsAddressSet = true
	case "storage-root":
		c.Storage.Root = value
	case "storage-run-root":
		c.Storage.RunRoot = value
	case "storage-driver":
		c.Storage.Driver = value
	case "registries-config":
		c.Registries.ConfigPath = value
	case "nri-socket":
		c.NRI.SocketPath = value
	case "cdi-spec-dirs":
		c.CDI.SpecDirs = filepath.SplitList(value)
	default:
		return fmt.Errorf("unknown flag --%s", flag)
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("flag --%s: %w", flag, err)
	}
	return nil
}

// ParseLevel maps a log level name to slog's level.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not a log level; use debug, info, warn or error", s)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Duration is a time.Duration written as a Go duration string ("90s", "5m").
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler for TOML strings.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration; write it like \"90s\" or \"5m\"", string(b))
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Std returns the value as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Size is a byte count written as a number or with a binary or decimal
// suffix (64Mi, 1G), as Kubernetes quantities are.
type Size int64

var sizeSuffixes = []struct {
	suffix string
	mult   int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
}

// ParseSize parses a Size string.
func ParseSize(s string) (Size, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, sfx := range sizeSuffixes {
		if strings.HasSuffix(s, sfx.suffix) {
			s, mult = strings.TrimSuffix(s, sfx.suffix), sfx.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size; write bytes or a number with Ki, Mi, Gi, Ti, k, M, G or T", s)
	}
	return Size(n * mult), nil
}

// UnmarshalText implements encoding.TextUnmarshaler for TOML strings.
func (z *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*z = v
	return nil
}

// MarshalText prints the size with the largest exact binary suffix.
func (z Size) MarshalText() ([]byte, error) {
	n := int64(z)
	for _, sfx := range []struct {
		s string
		m int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if n != 0 && n%sfx.m == 0 {
			return []byte(strconv.FormatInt(n/sfx.m, 10) + sfx.s), nil
		}
	}
	return []byte(strconv.FormatInt(n, 10)), nil
}
