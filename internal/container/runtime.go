package container

import (
	"context"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/images"
	"github.com/floe-cri/floe/internal/monitor"
)

// Runtime is what the container core needs of the driver that runs
// containers for one runtime handler: *monitor.Monitor (conmon + runc) in
// the daemon, a fake in the unit tests. Every method works from the
// driver's record (monitor.Container), which the core persists, so a
// restarted daemon carries on with the same records.
type Runtime interface {
	// Create makes the container from its bundle without starting it.
	Create(ctx context.Context, opts monitor.CreateOptions) (*monitor.Container, error)
	Start(ctx context.Context, c *monitor.Container) error
	// Stop signals the container, then kills it after timeout, and
	// returns its exit.
	Stop(ctx context.Context, c *monitor.Container, sig syscall.Signal, timeout time.Duration) (*monitor.Exit, error)
	// Delete kills and deletes the container; deleting one the driver
	// does not know succeeds.
	Delete(ctx context.Context, c *monitor.Container) error
	// Wait blocks until the container exits or ctx ends.
	Wait(ctx context.Context, c *monitor.Container) (*monitor.Exit, error)
	// ExitStatus is the container's exit, or nil while it has not exited.
	ExitStatus(c *monitor.Container) (*monitor.Exit, error)
	// State is the runtime's view of the container and its pid.
	State(ctx context.Context, id string) (monitor.Status, int, error)
	Update(ctx context.Context, c *monitor.Container, res *specs.LinuxResources) error
	ReopenLog(ctx context.Context, c *monitor.Container) error
	ExecSync(ctx context.Context, c *monitor.Container, process *specs.Process, timeout time.Duration) (*monitor.ExecResult, error)
	Exec(ctx context.Context, c *monitor.Container, process *specs.Process, s monitor.ExecStreams) (int, error)
	Attach(ctx context.Context, c *monitor.Container, s monitor.AttachStreams) error
	Resize(c *monitor.Container, rows, cols uint16) error
	// CheckpointSupport says why this handler cannot checkpoint, or nil.
	CheckpointSupport() error
	// Checkpoint dumps the running container with criu.
	Checkpoint(ctx context.Context, c *monitor.Container, opts monitor.CheckpointOptions) error
}

var _ Runtime = (*monitor.Monitor)(nil)

// Images is what the container core needs of the image store
// (*images.Service): the container's image, its writable layer and the
// read-only mounts of image volumes.
type Images interface {
	Status(ref string) (*images.Image, error)
	CreateContainerLayer(ref, containerID, name string) (string, error)
	DeleteContainerLayer(containerID string) error
	ContainerChanges(containerID string) ([]images.LayerChange, error)
	MountImage(imageID, holder string) (string, error)
	UnmountImage(imageID, holder string) error
	AdoptImageMount(imageID, holder string)
}

var _ Images = (*images.Service)(nil)
