// Package ocispec builds the OCI runtime spec (config.json) runc gets for a
// container, from a plain description of what the image and the kubelet ask
// for. It applies the rules a CRI runtime owes the kubelet: how command,
// args and env merge with the image config, how users are resolved inside
// the container's own /etc/passwd and /etc/group, which capabilities,
// seccomp profile, masked paths and sysctls a container gets, and how
// requests the host cannot honour (capabilities outside the daemon's
// bounding set, an oom_score_adj below the daemon's own) are brought within
// reach instead of failing the container.
//
// The package knows nothing of CRI protobufs: the container service
// translates a CreateContainerRequest into a Container.
package ocispec

import (
	"log/slog"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/cgroups"
)

// ImageConfig is the part of an image's config that shapes the process.
type ImageConfig struct {
	Entrypoint []string
	Cmd        []string
	Env        []string // KEY=VALUE
	WorkingDir string
	User       string // "", "name", "uid", "name:group", "uid:gid"
	StopSignal string // "SIGTERM", "TERM" or "15"; empty means SIGTERM
}

// SeccompKind selects a seccomp profile.
type SeccompKind string

// Seccomp profile kinds, as in CRI's SecurityProfile.
const (
	SeccompUnconfined     SeccompKind = "Unconfined"
	SeccompRuntimeDefault SeccompKind = "RuntimeDefault"
	SeccompLocalhost      SeccompKind = "Localhost"
)

// Seccomp is the requested seccomp profile. The zero value is Unconfined,
// which is also what CRI means by an unset profile.
type Seccomp struct {
	Kind SeccompKind
	// LocalhostPath is the host path of a JSON profile, for Localhost.
	LocalhostPath string
}

// Propagation of a bind mount, as in CRI's MountPropagation.
type Propagation string

// Mount propagation modes.
const (
	PropagationPrivate  Propagation = "private"
	PropagationHostToCt Propagation = "rslave"  // host -> container
	PropagationBidir    Propagation = "rshared" // both ways
)

// Mount is a bind mount of a host path into the container.
type Mount struct {
	ContainerPath string
	HostPath      string
	Readonly      bool
	// RecursiveReadOnly makes every submount read-only too (runc's "rro"
	// option, mount_setattr with AT_RECURSIVE); callers check that it
	// comes with Readonly and private propagation.
	RecursiveReadOnly bool
	Propagation       Propagation // empty means private
	// Image, when set, makes this an image volume (KEP-4639): the root
	// filesystem of that image (as the request named it), or its
	// ImageSubPath, mounted read-only. The container service mounts the
	// image and puts the resolved host path in HostPath before Build.
	Image        string
	ImageSubPath string
	// Options are extra mount flags (CRI mount_options), from
	// MountOptionsAllowed.
	Options []string
	// SELinuxRelabel gives HostPath the container's mount label before
	// the container is made (CRI selinux_relabel); see applyLSM.
	SELinuxRelabel bool
}

// Device is a host device node made available in the container.
type Device struct {
	ContainerPath string
	HostPath      string
	Permissions   string // any of "rwm"; empty means "rwm"
}

// GroupsPolicy says where a container's supplementary groups come from
// (CRI SupplementalGroupsPolicy, KEP-3619).
type GroupsPolicy int

const (
	// GroupsMerge adds the groups the container's /etc/group lists the
	// user as a member of to the primary gid and the requested
	// supplemental groups. It is the CRI default.
	GroupsMerge GroupsPolicy = iota
	// GroupsStrict uses only the primary gid and the requested
	// supplemental groups: whatever the image's /etc/group says about the
	// user is ignored, so a pod's groups are exactly what its spec says.
	GroupsStrict
)

// User is the CRI user request. When none of RunAsUser, RunAsUsername is
// set, the image's User applies. The kubelet folds fsGroup into
// SupplementalGroups, so it needs no field of its own.
type User struct {
	RunAsUser          *int64
	RunAsUsername      string
	RunAsGroup         *int64
	SupplementalGroups []int64
	GroupsPolicy       GroupsPolicy
}

// Capabilities are the CRI add/drop lists. Names may be given with or
// without the CAP_ prefix, in any case; "ALL" means every capability.
type Capabilities struct {
	Add  []string
	Drop []string
}

// Hugepage limits one huge page size, e.g. PageSize "2MB".
type Hugepage struct {
	PageSize string
	Limit    uint64
}

// Resources are the container's cgroup limits. Zero means unset.
type Resources struct {
	CPUShares       int64
	CPUQuota        int64
	CPUPeriod       int64
	CpusetCpus      string
	CpusetMems      string
	MemoryLimit     int64
	MemorySwapLimit int64 // memory plus swap, as cgroup v1 memsw and the CRI define it
	Hugepages       []Hugepage
	PidsLimit       int64
	Unified         map[string]string // cgroup v2 files; refused on v1 hosts
}

// Namespaces says which pod namespaces the container joins. An empty path
// with the Host flag unset gives the container a namespace of its own.
type Namespaces struct {
	NetPath string
	IPCPath string
	UTSPath string
	PIDPath string // the pod init's /proc/PID/ns/pid when the pod shares PIDs
	// UserPath is the pod's pinned user namespace; runc 1.1 also needs
	// its mappings (it does not read them from the namespace).
	UserPath    string
	UIDMappings []specs.LinuxIDMapping
	GIDMappings []specs.LinuxIDMapping
	HostNetwork bool
	HostIPC     bool
	HostPID     bool
}

// PodFiles are the per-pod files bind-mounted into every container. Empty
// entries are skipped.
type PodFiles struct {
	ResolvConf string
	Hosts      string
	Hostname   string
	Shm        string // a tmpfs mounted at /dev/shm
}

// Container describes one container to build a spec for.
type Container struct {
	ID string
	// Rootfs is the host path of the container's root filesystem; users
	// and groups are resolved in its /etc/passwd and /etc/group.
	Rootfs         string
	ReadonlyRootfs bool
	Image          ImageConfig

	// CRI overrides; see Build for how they merge with Image.
	Command    []string
	Args       []string
	Env        []string // KEY=VALUE, overriding the image's
	WorkingDir string
	TTY        bool
	Stdin      bool
	// StdinOnce closes the container's stdin when the first attached
	// client detaches (CRI stdin_once).
	StdinOnce bool
	Hostname  string // exported as HOSTNAME

	User         User
	Capabilities Capabilities
	Privileged   bool
	NoNewPrivs   bool
	Seccomp      Seccomp
	// MaskedPaths and ReadonlyPaths replace the defaults when non-nil (the
	// kubelet sends them); ProcMountUnmasked or Privileged clears both.
	MaskedPaths       []string
	ReadonlyPaths     []string
	ProcMountUnmasked bool
	Sysctls           map[string]string
	OOMScoreAdj       int
	// LSM is the AppArmor profile and SELinux labels, decided by the
	// server against what the host enforces.
	LSM LSM

	Mounts    []Mount
	Devices   []Device
	Resources Resources

	Namespaces  Namespaces
	CgroupsPath string
	PodFiles    PodFiles
	// TerminationMessagePath is where the container writes its
	// termination message; TerminationMessageHostPath is the host file
	// bind-mounted there.
	TerminationMessagePath     string
	TerminationMessageHostPath string

	Annotations map[string]string
}

// Options are the daemon-wide settings and host facts Build depends on.
// Zero values are filled from the host (see Build).
type Options struct {
	// Defaults returns the node-wide defaults in force (a func, so the
	// daemon can swap them on SIGHUP); nil means none.
	Defaults func() *NodeDefaults

	// DefaultCapabilities is the capability set of an unprivileged
	// container before add/drop; nil means DefaultCapabilities.
	DefaultCapabilities []string
	// BoundingSet holds the capabilities the daemon itself may grant; nil
	// means read from /proc/self/status (CapBnd).
	BoundingSet []string
	// MinOOMScoreAdj is the lowest oom_score_adj the daemon may set; nil
	// means work it out from /proc/self (see MinOOMScoreAdj).
	MinOOMScoreAdj *int
	// Cgroups is what the host's cgroup hierarchy can hold; limits it
	// cannot are left out or refused (see LinuxResources). nil means
	// unknown: every limit goes to the runtime as asked.
	Cgroups *cgroups.Support
	// Relabel gives a mount's host path an SELinux label; nil means
	// lsm.Relabel.
	Relabel func(path, label string) error
	Log     *slog.Logger
}

// DefaultCapabilities is the capability set a non-privileged container gets
// before add/drop: the same fourteen as Docker, containerd and CRI-O.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// DefaultMaskedPaths are hidden from non-privileged containers (the
// kubelet's and containerd's defaults).
var DefaultMaskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
	"/proc/sched_debug", "/proc/scsi", "/sys/firmware",
	"/sys/devices/virtual/powercap",
}

// DefaultReadonlyPaths are read-only in non-privileged containers.
var DefaultReadonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}
