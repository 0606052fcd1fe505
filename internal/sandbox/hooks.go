package sandbox

import (
	"context"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Hooks are told of every step of a pod's life, in order (NRI plugins,
// internal/nri). An error from RunPodSandbox fails the creation, which
// is then undone; the others only inform.
type Hooks interface {
	// BlockSync holds off the synchronisation of a newly connecting
	// plugin while a creation is under way, so the plugin learns of the
	// pod either in its Synchronize or through RunPodSandbox.
	BlockSync() (unblock func())
	// RunPodSandbox is called once the pod is made, before anyone can
	// see it.
	RunPodSandbox(ctx context.Context, sb *Sandbox) error
	// StopPodSandbox is called once the pod's containers are stopped,
	// before its network and namespaces are released, and only for a
	// pod that was ready.
	StopPodSandbox(ctx context.Context, sb *Sandbox)
	RemovePodSandbox(ctx context.Context, sb *Sandbox)
	// UpdatePodSandbox is told of the pod-level resources (overhead and
	// the sum of the containers') the kubelet is applying; an error fails
	// the update before it is recorded. PostUpdatePodSandbox follows once
	// it is.
	UpdatePodSandbox(ctx context.Context, sb *Sandbox, overhead, resources *specs.LinuxResources) error
	PostUpdatePodSandbox(ctx context.Context, sb *Sandbox)
}

type noHooks struct{}

func (noHooks) BlockSync() func()                             { return func() {} }
func (noHooks) RunPodSandbox(context.Context, *Sandbox) error { return nil }
func (noHooks) StopPodSandbox(context.Context, *Sandbox)      {}
func (noHooks) RemovePodSandbox(context.Context, *Sandbox)    {}
func (noHooks) UpdatePodSandbox(context.Context, *Sandbox, *specs.LinuxResources, *specs.LinuxResources) error {
	return nil
}
func (noHooks) PostUpdatePodSandbox(context.Context, *Sandbox) {}

// SetHooks connects the hooks (created after this manager, since they
// read it); call before serving requests.
func (m *Manager) SetHooks(h Hooks) {
	if h == nil {
		h = noHooks{}
	}
	m.hooks = h
}
