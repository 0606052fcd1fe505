// Package config defines floe's configuration: its defaults, how the main
// file, drop-ins and command-line flags are layered, and how every value is
// validated so that a bad setting stops startup with a message naming the
// file, the key and what is allowed.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
)

// Default locations of the configuration on a node.
const (
	DefaultFile      = "/etc/floe/floe.toml"
	DefaultDropInDir = "/etc/floe/floe.d"
)

// Config is the whole of floe's configuration. The comment tags are printed
// by `floe config`, so they are the reference documentation of each option.
type Config struct {
	Socket         string             `toml:"socket" comment:"Unix socket the CRI gRPC API is served on (created with mode 0660)."`
	StateDir       string             `toml:"state_dir" comment:"Persistent state: the sandbox database (floe.db) and its lock."`
	RunDir         string             `toml:"run_dir" comment:"Volatile per-boot state: per-pod resolv.conf/hosts/hostname, /dev/shm mounts, pinned ipc/uts namespaces."`
	CgroupManager  string             `toml:"cgroup_manager" comment:"Cgroup driver: \"cgroupfs\" or \"systemd\". Must match the kubelet's cgroupDriver."`
	LogLevel       string             `toml:"log_level" comment:"Log level: debug, info, warn or error."`
	LogFormat      string             `toml:"log_format" comment:"Log format: text or json."`
	InspectSocket  string             `toml:"inspect_socket" comment:"Unix socket of the HTTP inspect endpoint (/info, /pods/<id>) that 'floe inspect' and 'floe status' read. Empty means inspect.sock in run_dir, so daemons with their own run_dir never share it."`
	Metrics        MetricsConfig      `toml:"metrics" comment:"Prometheus metrics."`
	Streaming      StreamingConfig    `toml:"streaming" comment:"The streaming server behind Exec, Attach and PortForward URLs."`
	Network        NetworkConfig      `toml:"network" comment:"Pod networking through CNI."`
	Sandbox        SandboxConfig      `toml:"sandbox" comment:"Pod sandbox settings."`
	UserNamespaces UsernsConfig       `toml:"user_namespaces" comment:"Pod user namespaces: where the ids of automatic ones (io.kubernetes.cri-o.userns-mode=auto) come from."`
	DefaultRuntime string             `toml:"default_runtime" comment:"Runtime handler used when a pod names none (RuntimeClass handler \"\")."`
	Runtimes       map[string]Runtime `toml:"runtimes" comment:"OCI runtime handlers, one table per RuntimeClass handler name."`
	Containers     ContainersConfig   `toml:"containers" comment:"Container settings."`
	Storage        StorageConfig      `toml:"storage" comment:"Image and container layer storage (containers/storage), shared with podman when the paths match."`
	Images         ImagesConfig       `toml:"images" comment:"Image pulls."`
	Registries     RegistriesConfig   `toml:"registries" comment:"Registry resolution through registries.conf (search registries, mirrors, insecure and blocked registries)."`
	NRI            NRIConfig          `toml:"nri" comment:"NRI (Node Resource Interface) plugins, which see and may adjust every pod and container."`
	CDI            CDIConfig          `toml:"cdi" comment:"CDI (Container Device Interface) devices: ContainerConfig.CDIDevices and the cdi.k8s.io/* annotations."`
	Checkpoint     CheckpointConfig   `toml:"checkpoint" comment:"Checkpoint/restore of containers (CRI CheckpointContainer, restore through CreateContainer) with criu."`
	AppArmor       AppArmorConfig     `toml:"apparmor" comment:"AppArmor, on nodes that enforce it."`
	Tracing        TracingConfig      `toml:"tracing" comment:"OpenTelemetry tracing of the CRI calls, exported over OTLP/gRPC."`

	// Sources lists the files that were read, in order, for reports.
	Sources []string `toml:"-"`
	// MetricsAddressSet records that a file or flag chose metrics.address,
	// which makes a busy port fatal instead of a warning.
	MetricsAddressSet bool `toml:"-"`
}

// InspectSocketPath is where the inspect endpoint listens: inspect_socket,
// or inspect.sock in run_dir when that is empty.
func (c *Config) InspectSocketPath() string {
	if c.InspectSocket != "" {
		return c.InspectSocket
	}
	return filepath.Join(c.RunDir, "inspect.sock")
}

// MetricsConfig configures the Prometheus endpoint.
type MetricsConfig struct {
	Address string `toml:"address" comment:"host:port serving /metrics; keep it on loopback unless a scraper needs more. Empty disables metrics. When left at its default and the port is taken (another floe on the node), floe runs without metrics and says so in its log and 'floe status'; an address set in a file or flag must be free."`
}

// StreamingConfig configures the streaming server.
type StreamingConfig struct {
	Address     string `toml:"address" comment:"host:port the streaming server listens on; port 0 picks a free port. The kubelet connects to it, so keep it on loopback unless the kubelet proxies from elsewhere."`
	TLSCertFile string `toml:"tls_cert_file" comment:"PEM certificate for serving streams over TLS; empty serves plain HTTP."`
	TLSKeyFile  string `toml:"tls_key_file" comment:"PEM private key matching tls_cert_file."`
}

// StorageConfig configures the containers/storage store. The defaults are
// podman's, so images floe pulls are visible to podman on the node and
// the other way round.
type StorageConfig struct {
	Root         string   `toml:"root" comment:"Store root holding layers and image metadata (podman's graphroot)."`
	RunRoot      string   `toml:"run_root" comment:"Volatile store state: locks and mount counts (podman's runroot)."`
	Driver       string   `toml:"driver" comment:"Storage driver: \"overlay\" or \"vfs\"."`
	MountOptions []string `toml:"mount_options" comment:"Overlay mount options. \"metacopy=on\" is dropped with a warning when the kernel refuses it."`
}

// ImagesConfig configures pulls and image reporting.
type ImagesConfig struct {
	PullProgressTimeout Duration `toml:"pull_progress_timeout" comment:"A pull that makes no progress for this long is aborted and leaves no partial image. Unpacking a downloaded layer reports no progress, so allow for the largest layer's unpack time."`
	AuthFile            string   `toml:"auth_file" comment:"Registry credentials file (auth.json format) used when a pull request carries none; empty uses the containers default locations."`
	SignaturePolicy     string   `toml:"signature_policy" comment:"Signature policy file (policy.json format); empty accepts any image."`
	Pinned              []string `toml:"pinned" comment:"Images reported as pinned so the kubelet never garbage-collects them: exact names, or a prefix ending in \"*\"."`
}

// RegistriesConfig locates registries.conf and sets floe's short-name
// fallback.
type RegistriesConfig struct {
	ConfigPath              string   `toml:"config_path" comment:"The system registries.conf."`
	ConfigDir               string   `toml:"config_dir" comment:"Drop-in directory of the system registries.conf."`
	OverridePath            string   `toml:"override_path" comment:"floe's own registries.conf, applied after the system file and its drop-ins when it exists."`
	DefaultSearchRegistries []string `toml:"default_search_registries" comment:"Registries tried for a short name (\"busybox\") when registries.conf sets no unqualified-search-registries; empty makes short names an error."`
}

// NetworkConfig configures CNI.
type NetworkConfig struct {
	CNIConfigDir  string   `toml:"cni_config_dir" comment:"Directory holding CNI network configurations; the first .conflist/.conf/.json in name order is used."`
	CNIPluginDirs []string `toml:"cni_plugin_dirs" comment:"Directories searched for CNI plugin binaries, in order."`
	NetnsDir      string   `toml:"netns_dir" comment:"Where pod network namespaces are pinned, so 'ip netns' lists them."`
}

// SandboxConfig configures pod sandboxes.
type SandboxConfig struct {
	ShmSize        Size     `toml:"shm_size" comment:"Size of each pod's /dev/shm tmpfs (bytes, or with a suffix: 64Mi, 1Gi)."`
	AbandonedGrace Duration `toml:"abandoned_grace" comment:"How long a sandbox or container finished after its RunPodSandbox/CreateContainer caller gave up is kept for the caller's retry before it is removed."`
	CreateTimeout  Duration `toml:"create_timeout" comment:"Upper bound for creating one sandbox or container, independent of the caller's deadline."`
}

// UsernsConfig says whose subordinate ids pods with an automatic user
// namespace get. The defaults are CRI-O's and podman's (user
// "containers" in /etc/subuid and /etc/subgid), so a node set up for
// them works unchanged; the paths are settable so a test or a node with
// its own id plan need not edit the system files.
type UsernsConfig struct {
	SubIDUser  string `toml:"subid_user" comment:"User whose subordinate id ranges automatic pod user namespaces are carved from."`
	SubUIDFile string `toml:"subuid_file" comment:"File of subordinate uid ranges (user:start:count lines), read at startup and again on SIGHUP (a changed path needs a restart)."`
	SubGIDFile string `toml:"subgid_file" comment:"File of subordinate gid ranges (user:start:count lines), read at startup and again on SIGHUP (a changed path needs a restart)."`
}

// Runtime is one OCI runtime handler.
type Runtime struct {
	RuntimePath string `toml:"runtime_path" comment:"Path of the OCI runtime binary."`
	RuntimeRoot string `toml:"runtime_root" comment:"State root passed as --root; empty keeps the runtime's own default so 'runc list' works without flags."`
	RuntimeType string `toml:"runtime_type" comment:"\"oci\" (runc, crun: each container is its own), or \"sandboxed\" (gVisor's runsc: the containers of a pod run in one sandbox the runtime keeps; floe starts a pause container per pod and marks the others with the io.kubernetes.cri.container-type/sandbox-id annotations)."`
	MonitorPath string `toml:"monitor_path" comment:"Path of conmon, the per-container monitor."`
	// RuntimeArgs are global flags put before every runtime command.
	RuntimeArgs []string `toml:"runtime_args" comment:"Global flags given to the runtime before every command (runsc on kernels its network sandbox does not know: [\"--network=host\"])."`
	// AllowedAnnotations names the CRI-O pod annotations pods of this
	// handler may use; the rest are ignored (and logged).
	AllowedAnnotations []string `toml:"allowed_annotations" comment:"CRI-O pod annotations honoured for pods of this handler: io.kubernetes.cri-o.userns-mode (auto, auto:size=N: ids from the /etc/subuid and /etc/subgid ranges of user containers), io.kubernetes.cri-o.ShmSize, io.kubernetes.cri-o.Devices. Others are ignored with a log line."`
}

// RuntimeTypeSandboxed is the runtime_type of handlers whose containers of
// a pod share one sandbox (gVisor).
const RuntimeTypeSandboxed = "sandboxed"

// Sandboxed reports whether the handler keeps one sandbox per pod.
func (r Runtime) Sandboxed() bool { return r.RuntimeType == RuntimeTypeSandboxed }

// NRIConfig configures the NRI adaptation.
type NRIConfig struct {
	Enable              bool     `toml:"enable" comment:"Serve NRI: start the plugins in plugin_path and accept external plugins on socket_path."`
	SocketPath          string   `toml:"socket_path" comment:"Unix socket external NRI plugins connect to. Empty accepts no external plugins. A socket another live process serves is left alone (NRI then runs without it, as the log and 'floe status' say)."`
	PluginPath          string   `toml:"plugin_path" comment:"Directory of pre-installed NRI plugins (executables named NN-name) floe starts itself."`
	PluginConfigPath    string   `toml:"plugin_config_path" comment:"Directory of configuration for the pre-installed plugins (NN-name.conf or name.conf)."`
	RegistrationTimeout Duration `toml:"registration_timeout" comment:"How long a joining plugin may take to register and be configured, and then to take in the node's pods and containers (Synchronize) when that is longer than request_timeout; one that takes longer is disconnected."`
	RequestTimeout      Duration `toml:"request_timeout" comment:"How long a plugin may take to answer one event; a plugin that takes longer fails the request and is disconnected."`
}

// CDIConfig configures the CDI registry.
type CDIConfig struct {
	SpecDirs []string `toml:"spec_dirs" comment:"Directories holding CDI spec files, lowest priority first (a device in a later directory wins)."`
}

// CheckpointConfig configures checkpoint/restore.
type CheckpointConfig struct {
	CRIUPath string `toml:"criu_path" comment:"criu binary floe checks at startup and runc uses (runc --criu). Kernels newer than the criu knows fail 'criu check' (Debian bookworm's criu 3.17 on Linux 6.13+): point this at a newer criu (4.x) to checkpoint there."`
}

// ContainersConfig configures containers: the node-wide defaults every
// container gets (as CRI-O's [crio.runtime] and containerd's default spec
// offer them) unless its pod or the kubelet asks otherwise.
type ContainersConfig struct {
	LogSizeMax          Size     `toml:"log_size_max" comment:"Largest a container log may grow before conmon truncates it (bytes or 10Mi); 0 means unlimited (the kubelet rotates logs itself)."`
	DefaultCapabilities []string `toml:"default_capabilities" comment:"Capabilities of a non-privileged container before its add/drop lists."`
	DefaultSysctls      []string `toml:"default_sysctls" comment:"Namespaced sysctls (\"name=value\") set in every pod; the pod's own sysctls win for the same name. net.* ones are left out for host-network pods and IPC ones (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*) for host-IPC pods, since there they would change the node. The default is containerd 2's: any user may bind ports below 1024 (root in a container may already, with CAP_NET_BIND_SERVICE) and open ICMP echo sockets (ping without CAP_NET_RAW), both confined to the pod's network namespace and on Kubernetes' list of safe sysctls. In a pod with a user namespace the default ping_group_range is narrowed to the gids the namespace maps (the kernel refuses unmapped ones). Set [] for the kernel's defaults (CRI-O's). Checked against the kernel at startup (an unknown name stops floe) and on SIGHUP, which applies changes to containers created after it."`
	DefaultUlimits      []string `toml:"default_ulimits" comment:"Resource limits of every container's processes (and their execs), CRI-O's syntax \"name=soft:hard\" (or \"name=limit\" for both), -1 for unlimited; name one of core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack. Example: [\"nofile=1024:2048\"]. Empty leaves the limits floe runs with (conmon and runc inherit them). A hard limit above floe's own needs CAP_SYS_RESOURCE, checked at startup (and on SIGHUP, which applies changes to containers created after it)."`
	PidsLimit           int64    `toml:"pids_limit" comment:"Most processes and threads one container may have (its cgroup's pids.max). The CRI gives the kubelet no per-container pid limit (it limits the pod cgroup itself with podPidsLimit), so this applies to every container unless an NRI plugin sets one. 0 or -1 means unlimited (the default, as in CRI-O and containerd; podPidsLimit is the Kubernetes way). A host without a pids cgroup controller refuses a positive value at startup. SIGHUP applies changes to containers created after it."`
	SeccompProfile      string   `toml:"seccomp_profile" comment:"Seccomp profile (docker/moby JSON format, an absolute path) used for containers asking for RuntimeDefault; empty uses floe's built-in profile (moby's default). Loaded and checked at startup (a bad file stops floe) and again on SIGHUP (a bad file then keeps every [containers] default in force, with an error in the log). Unconfined and Localhost requests do not use it."`
	HooksDir            []string `toml:"hooks_dir" comment:"Directories of OCI hook files (oci-hooks(5): *.json, version 1.0.0), lowest priority first: a file in a later directory masks the file of the same name in an earlier one. Matching hooks are added to a container's OCI spec at creation, in the stages they name (prestart, createRuntime, createContainer, startContainer, poststart, poststop; runc runs poststop when a stopped container is deleted). A missing directory is skipped; an invalid file is logged and skipped (still masking its namesake). Read at startup and again on SIGHUP."`
}

// AppArmorConfig is floe's AppArmor setting.
type AppArmorConfig struct {
	DefaultProfile string `toml:"default_profile" comment:"Loaded AppArmor profile a container asking for RuntimeDefault runs under on a node with AppArmor (for example one named like containerd's \"cri-containerd.apparmor.d\" or CRI-O's \"crio-default\"). floe ships none: empty refuses RuntimeDefault there with FailedPrecondition. Ignored on nodes without AppArmor, where RuntimeDefault runs unconfined."`
}

// Default returns the built-in configuration.
func Default() *Config {
	return &Config{
		Socket:        "/run/floe/floe.sock",
		StateDir:      "/var/lib/floe",
		RunDir:        "/run/floe",
		CgroupManager: "cgroupfs",
		LogLevel:      "info",
		LogFormat:     "text",
		InspectSocket: "",
		Metrics:       MetricsConfig{Address: "127.0.0.1:9537"},
		Streaming:     StreamingConfig{Address: "127.0.0.1:0"},
		Network: NetworkConfig{
			CNIConfigDir:  "/etc/cni/net.d",
			CNIPluginDirs: []string{"/usr/lib/cni", "/opt/cni/bin"},
			NetnsDir:      "/run/netns",
		},
		Sandbox: SandboxConfig{
			ShmSize:        64 << 20,
			AbandonedGrace: Duration(5 * 60e9),
			CreateTimeout:  Duration(4 * 60e9),
		},
		UserNamespaces: UsernsConfig{SubIDUser: "containers", SubUIDFile: "/etc/subuid", SubGIDFile: "/etc/subgid"},
		DefaultRuntime: "runc",
		Runtimes: map[string]Runtime{
			"runc": {RuntimePath: "/usr/sbin/runc", RuntimeType: "oci", MonitorPath: "/usr/bin/conmon"},
		},
		Containers: ContainersConfig{
			DefaultCapabilities: []string{
				"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
				"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
				"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
			},
			DefaultSysctls: []string{"net.ipv4.ip_unprivileged_port_start=0", "net.ipv4.ping_group_range=0 2147483647"},
			DefaultUlimits: []string{},
			HooksDir:       []string{"/usr/share/containers/oci/hooks.d", "/etc/containers/oci/hooks.d"},
		},
		Storage: StorageConfig{
			Root:         "/var/lib/containers/storage",
			RunRoot:      "/run/containers/storage",
			Driver:       "overlay",
			MountOptions: []string{"nodev", "metacopy=on"},
		},
		Images: ImagesConfig{
			PullProgressTimeout: Duration(60e9),
			Pinned:              []string{},
		},
		Registries: RegistriesConfig{
			ConfigPath:              "/etc/containers/registries.conf",
			ConfigDir:               "/etc/containers/registries.conf.d",
			OverridePath:            "/etc/floe/registries.conf",
			DefaultSearchRegistries: []string{"docker.io"},
		},
		NRI: NRIConfig{
			Enable:              true,
			SocketPath:          "/var/run/nri/nri.sock",
			PluginPath:          "/opt/nri/plugins",
			PluginConfigPath:    "/etc/nri/conf.d",
			RegistrationTimeout: Duration(5e9),
			RequestTimeout:      Duration(2e9),
		},
		CDI:        CDIConfig{SpecDirs: []string{"/etc/cdi", "/var/run/cdi"}},
		Checkpoint: CheckpointConfig{CRIUPath: "/usr/sbin/criu"},
		Tracing:    defaultTracing(),
	}
}

// Load builds the effective configuration: built-in defaults, then the main
// file (if it exists; a file named explicitly must exist), then each drop-in
// *.toml in name order. Flags are applied by the caller with ApplyFlag.
func Load(file string, explicit bool, dropInDir string) (*Config, error) {
	cfg := Default()
	if file != "" {
		err := cfg.mergeFile(file)
		if errors.Is(err, os.ErrNotExist) && !explicit {
			err = nil
		}
		if err != nil {
			return nil, err
		}
	}
	if dropInDir != "" {
		matches, err := filepath.Glob(filepath.Join(dropInDir, "*.toml"))
		if err != nil {
			return nil, fmt.Errorf("list drop-ins in %s: %w", dropInDir, err)
		}
		sort.Strings(matches)
		for _, m := range matches {
			if err := cfg.mergeFile(m); err != nil {
				return nil, err
			}
		}
	}
	return cfg, nil
}

// mergeFile decodes one file on top of cfg. Keys the file does not set keep
// their current values, which is what makes drop-ins work.
func (c *Config) mergeFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config %s: %w", path, err)
	}
	// go-toml decodes onto the existing values, including existing map
	// entries, so keys a drop-in does not set keep their earlier values.
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return describeDecodeError(path, err)
	}
	var keys struct {
		Metrics struct {
			Address *string `toml:"address"`
		} `toml:"metrics"`
	}
	if toml.Unmarshal(data, &keys) == nil && keys.Metrics.Address != nil {
		c.MetricsAddressSet = true
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	c.Sources = append(c.Sources, path)
	return nil
}

func describeDecodeError(path string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var keys []string
		for _, e := range strict.Errors {
			row, col := e.Position()
			keys = append(keys, fmt.Sprintf("%q (line %d, column %d)", strings.Join(e.Key(), "."), row, col))
		}
		return fmt.Errorf("config %s: unknown key %s; run 'floe config' to see every known key", path, strings.Join(keys, ", "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		key := strings.Join(de.Key(), ".")
		if key == "" {
			return fmt.Errorf("config %s: line %d, column %d: %s", path, row, col, de.Error())
		}
		return fmt.Errorf("config %s: key %q (line %d, column %d): %s", path, key, row, col, de.Error())
	}
	return fmt.Errorf("config %s: %w", path, err)
}

// Render prints the configuration as commented TOML that can be copied to
// /etc/floe/floe.toml as it is.
func (c *Config) Render() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# floe configuration. Copy to " + DefaultFile + "; drop-ins in " + DefaultDropInDir + "/*.toml\n")
	buf.WriteString("# are applied after it in name order, then command-line flags.\n\n")
	enc := toml.NewEncoder(&buf)
	enc.SetIndentTables(true)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	return buf.Bytes(), nil
}
