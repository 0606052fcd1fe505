// Package container is the domain core for containers: it turns a
// translated CRI request into a rootfs (internal/images), an OCI spec
// (internal/ocispec) and a conmon-monitored runc container
// (internal/monitor) inside a pod's pinned namespaces, records every step
// in the state database, follows exits through conmon's exit files, and
// serves status and lists from memory. It knows nothing of gRPC.
package container

import (
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/monitor"
	"github.com/floe-cri/floe/internal/objects"
	"github.com/floe-cri/floe/internal/ocispec"
)

// State of a container, as the kubelet sees it.
type State string

// Container states. Creating is only ever seen in the database after a
// crash during creation.
const (
	StateCreating State = "creating"
	StateCreated  State = "created"
	StateRunning  State = "running"
	StateExited   State = "exited"
)

// Spec is what a CreateContainer asks for, already translated from CRI.
type Spec struct {
	Name        string            `json:"name"`
	Attempt     uint32            `json:"attempt"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Image is the CRI image.image: the image ID or the reference the
	// kubelet resolved; UserImage is image.user_specified_image, the
	// name from the pod spec. ImageAnnotations and ImageRuntimeHandler are
	// the other ImageSpec fields, reported back unchanged.
	Image               string            `json:"image"`
	UserImage           string            `json:"userImage,omitempty"`
	ImageAnnotations    map[string]string `json:"imageAnnotations,omitempty"`
	ImageRuntimeHandler string            `json:"imageRuntimeHandler,omitempty"`
	// StopSignal overrides the image's stop signal ("15"; CRI stop_signal).
	StopSignal string `json:"stopSignal,omitempty"`
	// LogPath is relative to the pod's log directory, as CRI defines it.
	LogPath string `json:"logPath,omitempty"`
	// OCI is the CRI-derived part of the OCI description; the manager
	// fills in what depends on the image, the rootfs and the pod.
	OCI ocispec.Container `json:"oci"`
	// PIDMode is the container's PID namespace mode ("pod", "container",
	// "node", "target"); TargetID names the container for "target".
	PIDMode  string `json:"pidMode"`
	TargetID string `json:"targetId,omitempty"`
	// CDIDevices are the qualified CDI device names asked for, through
	// ContainerConfig.CDIDevices and the cdi.k8s.io/* annotations.
	CDIDevices []string `json:"cdiDevices,omitempty"`
	// Raw is the CRI ContainerConfig in deterministic protobuf encoding.
	Raw []byte `json:"raw,omitempty"`
	// Restore is set when the container is a restore of a checkpoint
	// archive (CreateContainer naming the archive as its image).
	Restore *RestoreSource `json:"restore,omitempty"`
}

// RestoreSource is the checkpoint a container is restored from.
type RestoreSource struct {
	Archive string `json:"archive"`
	// FromID is the checkpointed container's id.
	FromID string `json:"fromId"`
}

func (s *Spec) hash() string { return objects.Hash(s) }

// Container is the durable record of one container.
type Container struct {
	// Meta holds the id, the request's hash, the creation time and the
	// unclaimed mark (see internal/objects).
	objects.Meta
	SandboxID string `json:"sandboxId"`
	Spec      Spec   `json:"spec"`
	State     State  `json:"state"`
	Handler   string `json:"handler"`
	ImageID   string `json:"imageId"`
	ImageRef  string `json:"imageRef"` // repo digest, or the ID without one
	// ImageName is what ContainerStatus.image.image reports (see
	// imageName); empty in records from before it existed.
	ImageName  string `json:"imageName,omitempty"`
	StartedAt  int64  `json:"startedAt,omitempty"`
	FinishedAt int64  `json:"finishedAt,omitempty"`
	ExitCode   int32  `json:"exitCode"`
	Reason     string `json:"reason,omitempty"`
	Message    string `json:"message,omitempty"`
	LogPath    string `json:"logPath"`
	Bundle     string `json:"bundle"`
	Rootfs     string `json:"rootfs,omitempty"`
	StopSignal int    `json:"stopSignal"`
	// User is who the process runs as and CgroupsPath the OCI
	// cgroupsPath, as the built spec says: recorded once at creation so
	// status, stats and inspect need not read the bundle.
	User        *specs.User `json:"user,omitempty"`
	CgroupsPath string      `json:"cgroupsPath,omitempty"`
	// RestoreImages is the directory of criu images (in the bundle) a
	// restored container's StartContainer restores from: until then it
	// has no monitor, since `runc restore` creates and starts in one go.
	RestoreImages string `json:"restoreImages,omitempty"`
	// Monitor is conmon's record; nil until conmon created the container.
	Monitor *monitor.Container `json:"monitor,omitempty"`
	// ImageMounts are the image mounts this container holds for its
	// image volumes, one per distinct image reference. They are written
	// to the record as soon as they are taken and cleared before they
	// are given back, so restart recovery and removal release each one
	// at most once.
	ImageMounts []ImageMount `json:"imageMounts,omitempty"`
}

// ImageMount is one hold on an image mounted read-only for image volumes.
type ImageMount struct {
	// Image is the reference as the mounts named it.
	Image      string `json:"image"`
	ImageID    string `json:"imageId"`
	Mountpoint string `json:"mountpoint"`
}

// ImageVolumeID is the id of the image an image volume of this container
// named ref resolved to, or "" if it holds none.
func (c *Container) ImageVolumeID(ref string) string {
	for _, im := range c.ImageMounts {
		if im.Image == ref {
			return im.ImageID
		}
	}
	return ""
}

// reservationKey is one live container per (pod, name, attempt).
func reservationKey(sandboxID string, s *Spec) string {
	return fmt.Sprintf("%s_%s_%d", sandboxID, s.Name, s.Attempt)
}

func (c *Container) clone() *Container {
	cp := *c
	cp.ImageMounts = slices.Clone(c.ImageMounts)
	if c.Spec.Restore != nil {
		r := *c.Spec.Restore
		cp.Spec.Restore = &r
	}
	if c.Monitor != nil {
		m := *c.Monitor
		cp.Monitor = &m
	}
	return &cp
}

// Filter selects containers in List.
type Filter struct {
	IDPrefix  string
	SandboxID string // exact id or prefix
	State     State
	Labels    map[string]string
}

func (f Filter) match(c *Container) bool {
	return strings.HasPrefix(c.SandboxID, f.SandboxID) && (f.State == "" || c.State == f.State) &&
		objects.Match(c.ID, f.IDPrefix, c.Spec.Labels, f.Labels)
}

// ReportedImage is the image name ContainerStatus and ListContainers give.
func (c *Container) ReportedImage() string {
	if c.ImageName != "" {
		return c.ImageName
	}
	if c.Spec.UserImage != "" {
		return c.Spec.UserImage
	}
	return c.Spec.Image
}
