package container

import (
	"context"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Hooks are told of every step of a container's life, in order, and may
// change its spec before it is created and its resources before they are
// updated (NRI plugins, internal/nri). An error from CreateContainer,
// StartContainer or UpdateContainer fails that request; the others only
// inform.
type Hooks interface {
	// BlockSync holds off the synchronisation of a newly connecting
	// plugin while a creation is under way, so the plugin learns of the
	// container either in its Synchronize or through CreateContainer.
	BlockSync() (unblock func())
	CreateContainer(ctx context.Context, c *Container, s *specs.Spec) error
	PostCreateContainer(ctx context.Context, c *Container)
	StartContainer(ctx context.Context, c *Container) error
	PostStartContainer(ctx context.Context, c *Container)
	UpdateContainer(ctx context.Context, c *Container, r *specs.LinuxResources) (*specs.LinuxResources, error)
	PostUpdateContainer(ctx context.Context, c *Container)
	StopContainer(ctx context.Context, c *Container)
	RemoveContainer(ctx context.Context, c *Container)
}

// Devices resolves CDI device names (internal/cdi).
type Devices interface {
	// Check refuses unknown devices (InvalidArgument naming them).
	Check(devices []string) error
	// Inject applies the devices' edits to the spec.
	Inject(s *specs.Spec, devices []string) error
}

// noHooks is used when nothing is to be told.
type noHooks struct{}

func (noHooks) BlockSync() func()                                              { return func() {} }
func (noHooks) CreateContainer(context.Context, *Container, *specs.Spec) error { return nil }
func (noHooks) PostCreateContainer(context.Context, *Container)                {}
func (noHooks) StartContainer(context.Context, *Container) error               { return nil }
func (noHooks) PostStartContainer(context.Context, *Container)                 {}
func (noHooks) UpdateContainer(_ context.Context, _ *Container, r *specs.LinuxResources) (*specs.LinuxResources, error) {
	return r, nil
}
func (noHooks) PostUpdateContainer(context.Context, *Container) {}
func (noHooks) StopContainer(context.Context, *Container)       {}
func (noHooks) RemoveContainer(context.Context, *Container)     {}

// SetHooks connects the hooks (created after this manager, since they
// read it); call before serving requests.
func (m *Manager) SetHooks(h Hooks) {
	if h == nil {
		h = noHooks{}
	}
	m.hooks = h
}

// checkDevices refuses a container asking for CDI devices nobody
// describes, before anything is reserved or made.
func (m *Manager) checkDevices(spec *Spec) error {
	if len(spec.CDIDevices) == 0 {
		return nil
	}
	if m.opts.Devices == nil {
		return fmt.Errorf("config.CDI_devices: no CDI registry is configured")
	}
	return m.opts.Devices.Check(spec.CDIDevices)
}

// extendSpec applies the CDI devices' edits, then lets the hooks (NRI
// plugins) see and adjust the result, as containerd and CRI-O order them.
func (m *Manager) extendSpec(ctx context.Context, c *Container, s *specs.Spec) error {
	if len(c.Spec.CDIDevices) > 0 {
		if err := m.opts.Devices.Inject(s, c.Spec.CDIDevices); err != nil {
			return err
		}
	}
	return m.hooks.CreateContainer(ctx, c, s)
}

// ApplyResources sets the limits of a running container as an NRI plugin
// asked (an update of another container, or one of its own): the
// runtime gets them as they are, and the hooks are not told again.
func (m *Manager) ApplyResources(ctx context.Context, idOrPrefix string, r *specs.LinuxResources) error {
	c, mon, unlock, err := m.lockedRunning(idOrPrefix, "a resource update")
	if err != nil {
		return err
	}
	defer unlock()
	if err := mon.Update(ctx, c.Monitor, r); err != nil {
		return fmt.Errorf("update container %s: %w", c.ID, err)
	}
	return nil
}
