// Package sandbox is the domain core for pod sandboxes: it creates a pod's
// pinned namespaces, per-pod files and CNI attachment, records every step
// in the state database before exposing it, serves lists from memory, and
// makes the kubelet's retries safe (name reservations, abandoned-creation
// results kept for the retry, idempotent stop and remove). It knows nothing
// of gRPC; internal/server translates CRI requests into calls here.
package sandbox

import (
	"fmt"

	"github.com/floe-cri/floe/internal/network"
	"github.com/floe-cri/floe/internal/objects"
	"github.com/floe-cri/floe/internal/podfiles"
	"github.com/floe-cri/floe/internal/podinit"
	"github.com/floe-cri/floe/internal/userns"
)

// State of a sandbox, as the kubelet sees it.
type State string

// Sandbox states. Creating is only ever seen in the database after a crash.
const (
	StateCreating State = "creating"
	StateReady    State = "ready"
	StateNotReady State = "notready"
)

// NamespaceMode mirrors the CRI modes a pod can ask for.
type NamespaceMode string

// Namespace modes.
const (
	ModePod       NamespaceMode = "pod"
	ModeContainer NamespaceMode = "container"
	ModeNode      NamespaceMode = "node"
	ModeTarget    NamespaceMode = "target"
)

// Spec is what a RunPodSandbox asks for, already translated from CRI.
type Spec struct {
	Name           string                `json:"name"`
	Namespace      string                `json:"namespace"`
	UID            string                `json:"uid"`
	Attempt        uint32                `json:"attempt"`
	Hostname       string                `json:"hostname"`
	LogDirectory   string                `json:"logDirectory"`
	CgroupParent   string                `json:"cgroupParent"`
	RuntimeHandler string                `json:"runtimeHandler"`
	Labels         map[string]string     `json:"labels,omitempty"`
	Annotations    map[string]string     `json:"annotations,omitempty"`
	DNS            podfiles.DNS          `json:"dns"`
	PortMappings   []network.PortMapping `json:"portMappings,omitempty"`
	Bandwidth      *network.Bandwidth    `json:"bandwidth,omitempty"`
	NetworkMode    NamespaceMode         `json:"networkMode"`
	IPCMode        NamespaceMode         `json:"ipcMode"`
	PIDMode        NamespaceMode         `json:"pidMode"`
	// UserNS are the mappings of the pod's own user namespace (CRI
	// userns_options mode POD); nil runs the pod in the host's.
	UserNS *userns.Mappings `json:"userns,omitempty"`
	// UserNSAuto marks mappings floe picked (userns-mode=auto): a retry
	// of the request may be given other ids, so they are no part of the
	// request's identity (hash).
	UserNSAuto bool `json:"usernsAuto,omitempty"`
	// ShmSize overrides the node's /dev/shm size for this pod (the
	// io.kubernetes.cri-o.ShmSize annotation); 0 keeps it.
	ShmSize int64 `json:"shmSize,omitempty"`
	// Raw is the original CRI PodSandboxConfig in deterministic protobuf
	// encoding, kept for the container service, which needs the pod's
	// security context and sysctls when it builds container specs.
	Raw []byte `json:"raw,omitempty"`
}

// reservationKey is the name the kubelet reserves: one live sandbox per
// (name, namespace, uid, attempt).
func (s *Spec) reservationKey() string {
	return fmt.Sprintf("%s_%s_%s_%d", s.Name, s.Namespace, s.UID, s.Attempt)
}

// hash identifies the request's content, so a retry of the same request can
// be told from a different pod that reuses the name.
func (s *Spec) hash() string {
	c := *s
	// Ids floe picked for an "auto" user namespace are not part of the
	// request: a kubelet retry must still find its pod.
	if c.UserNSAuto {
		c.UserNS = nil
	}
	return objects.Hash(&c)
}

// Sandbox is the durable record of one pod sandbox.
type Sandbox struct {
	// Meta holds the id, the request's hash, the creation time and the
	// unclaimed mark (see internal/objects).
	objects.Meta
	Spec      Spec   `json:"spec"`
	State     State  `json:"state"`
	NetnsName string `json:"netnsName,omitempty"`
	NetnsPath string `json:"netnsPath,omitempty"`
	// UserPath pins the pod's user namespace, which owns its network,
	// IPC and UTS namespaces (and the PID namespace of its init).
	UserPath string `json:"userPath,omitempty"`
	IPCPath  string `json:"ipcPath,omitempty"`
	UTSPath  string `json:"utsPath,omitempty"`
	RunDir   string `json:"runDir"`
	// CgroupPath is the pod's cgroup (the kubelet's CgroupParent)
	// relative to each hierarchy's root, worked out once at creation;
	// "" when the pod has none.
	CgroupPath string              `json:"cgroupPath,omitempty"`
	Network    *network.Attachment `json:"network,omitempty"`
	// NetworkDown is set once DEL succeeded, so a repeated stop does not
	// run DEL again.
	NetworkDown bool `json:"networkDown,omitempty"`
	// PodInit is PID 1 of the pod's shared PID namespace, when the pod
	// asked for one (PID namespace mode POD).
	PodInit *podinit.Init `json:"podInit,omitempty"`
}

// Files returns the per-pod file locations.
func (s *Sandbox) Files() podfiles.Paths { return podfiles.PathsFor(s.RunDir) }

// IPs returns the pod's IPs, primary first; none once the network is down.
func (s *Sandbox) IPs() []string {
	if s.Network == nil || s.NetworkDown {
		return nil
	}
	return s.Network.IPs
}

func (s *Sandbox) clone() *Sandbox {
	c := *s
	return &c
}

// Filter selects sandboxes in List.
type Filter struct {
	IDPrefix string
	State    State
	Labels   map[string]string
}

func (f Filter) match(s *Sandbox) bool {
	return (f.State == "" || s.State == f.State) && objects.Match(s.ID, f.IDPrefix, s.Spec.Labels, f.Labels)
}
