package nri

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	nri "github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/runtime-tools/generate"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/ocispec"
	"github.com/floe-cri/floe/internal/sandbox"
)

var (
	_ sandbox.Hooks   = (*NRI)(nil)
	_ container.Hooks = (*NRI)(nil)
)

// BlockSync keeps a connecting plugin from synchronising until unblock:
// a pod or container being created then reaches it one way or the other.
func (n *NRI) BlockSync() func() {
	if n == nil {
		return func() {}
	}
	return n.a.BlockPluginSync().Unblock
}

// --- pods ---

// RunPodSandbox tells plugins of a pod about to become ready; an error
// fails (and undoes) the creation.
func (n *NRI) RunPodSandbox(ctx context.Context, sb *sandbox.Sandbox) error {
	if n == nil {
		return nil
	}
	if err := n.relay("RunPodSandbox", func() error { return n.a.RunPodSandbox(ctx, &nri.RunPodSandboxRequest{Pod: podSandbox(sb)}) }); err != nil {
		return fmt.Errorf("NRI plugin failed RunPodSandbox of pod %s: %w", sb.ID, err)
	}
	return nil
}

// StopPodSandbox tells plugins a pod stopped; its containers already have.
func (n *NRI) StopPodSandbox(ctx context.Context, sb *sandbox.Sandbox) {
	if n == nil {
		return
	}
	unlock := n.shared()
	err := n.a.StopPodSandbox(ctx, &nri.StopPodSandboxRequest{Pod: podSandbox(sb)})
	unlock()
	if err != nil {
		n.log.Warn("NRI plugin failed StopPodSandbox; the pod stops anyway", "pod", sb.ID, "err", err)
	}
}

// RemovePodSandbox tells plugins a pod is gone.
func (n *NRI) RemovePodSandbox(ctx context.Context, sb *sandbox.Sandbox) {
	if n == nil {
		return
	}
	unlock := n.shared()
	err := n.a.RemovePodSandbox(ctx, &nri.RemovePodSandboxRequest{Pod: podSandbox(sb)})
	unlock()
	if err != nil {
		n.log.Warn("NRI plugin failed RemovePodSandbox; the pod is removed anyway", "pod", sb.ID, "err", err)
	}
}

// pod is the container's pod for an event; a pod already removed is
// described by its id alone.
func (n *NRI) pod(c *container.Container) *nri.PodSandbox {
	sb, err := n.pods.Get(c.SandboxID)
	if err != nil {
		return &nri.PodSandbox{Id: c.SandboxID}
	}
	return podSandbox(sb)
}

// --- containers ---

// CreateContainer lets plugins adjust the spec of a container about to
// be created, and applies the updates and evictions of other containers
// they ask for. An error fails (and undoes) the creation.
func (n *NRI) CreateContainer(ctx context.Context, c *container.Container, s *specs.Spec) error {
	if n == nil {
		return nil
	}
	log := n.log.With("container", c.ID, "pod", c.SandboxID)
	req := &nri.CreateContainerRequest{Pod: n.pod(c), Container: containerInfo(c, s)}
	var resp *nri.CreateContainerResponse
	err := n.relay("CreateContainer", func() (err error) {
		resp, err = n.a.CreateContainer(ctx, req)
		return err
	})
	if err != nil {
		return fmt.Errorf("NRI plugin failed CreateContainer of %q: %w", c.Spec.Name, err)
	}
	if err := n.adjust(s, resp.GetAdjust(), log); err != nil {
		return fmt.Errorf("apply NRI adjustment to container %q: %w", c.Spec.Name, err)
	}
	if failed := n.applyUpdates(ctx, resp.GetUpdate(), c.ID); len(failed) > 0 {
		return fmt.Errorf("NRI plugins asked for updates of other containers that failed: %v", failed)
	}
	n.evict(ctx, resp.GetEvict())
	return nil
}

// adjust applies a plugin's adjustment to the spec, then keeps what the
// host allows: an oom_score_adj below floe's own cannot be set here.
func (n *NRI) adjust(s *specs.Spec, adj *nri.ContainerAdjustment, log *slog.Logger) error {
	if adj == nil {
		return nil
	}
	g := generate.SpecGenerator(&specEditor{s: s}, generate.WithCDIDeviceInjector(func(s *specs.Spec, devices []string) error {
		if n.devices == nil {
			return errors.New("no CDI registry")
		}
		return n.devices.Inject(s, devices)
	}))
	if err := g.Adjust(adj); err != nil {
		return err
	}
	if s.Process != nil && s.Process.OOMScoreAdj != nil {
		if minAdj, err := ocispec.MinOOMScoreAdj(); err == nil {
			adj := ocispec.ClampOOMScoreAdj(*s.Process.OOMScoreAdj, minAdj, log)
			s.Process.OOMScoreAdj = &adj
		}
	}
	log.Debug("NRI adjustment applied", "adjustment", adj.String())
	return nil
}

// PostCreateContainer tells plugins the container exists.
func (n *NRI) PostCreateContainer(ctx context.Context, c *container.Container) {
	if n == nil {
		return
	}
	ci := containerInfo(c, nil)
	ci.State = nri.ContainerState_CONTAINER_CREATED
	unlock := n.shared()
	err := n.a.PostCreateContainer(ctx, &nri.PostCreateContainerRequest{Pod: n.pod(c), Container: ci})
	unlock()
	if err != nil {
		n.log.Warn("NRI plugin failed PostCreateContainer", "container", c.ID, "err", err)
	}
}

// StartContainer tells plugins a container is about to start; an error
// fails the start.
func (n *NRI) StartContainer(ctx context.Context, c *container.Container) error {
	if n == nil {
		return nil
	}
	req := &nri.StartContainerRequest{Pod: n.pod(c), Container: containerInfo(c, nil)}
	if err := n.relay("StartContainer", func() error { return n.a.StartContainer(ctx, req) }); err != nil {
		return fmt.Errorf("NRI plugin failed StartContainer of %s: %w", c.ID, err)
	}
	return nil
}

// PostStartContainer tells plugins the container runs.
func (n *NRI) PostStartContainer(ctx context.Context, c *container.Container) {
	if n == nil {
		return
	}
	ci := containerInfo(c, nil)
	ci.State = nri.ContainerState_CONTAINER_RUNNING
	unlock := n.shared()
	err := n.a.PostStartContainer(ctx, &nri.PostStartContainerRequest{Pod: n.pod(c), Container: ci})
	unlock()
	if err != nil {
		n.log.Warn("NRI plugin failed PostStartContainer", "container", c.ID, "err", err)
	}
}

// UpdateContainer lets plugins change the resources of an update before
// it is applied; an error fails the update.
func (n *NRI) UpdateContainer(ctx context.Context, c *container.Container, r *specs.LinuxResources) (*specs.LinuxResources, error) {
	if n == nil {
		return r, nil
	}
	req := &nri.UpdateContainerRequest{Pod: n.pod(c), Container: containerInfo(c, nil), LinuxResources: nri.FromOCILinuxResources(r, nil)}
	var resp *nri.UpdateContainerResponse
	err := n.relay("UpdateContainer", func() (err error) {
		resp, err = n.a.UpdateContainer(ctx, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("NRI plugin failed UpdateContainer of %s: %w", c.ID, err)
	}
	var others []*nri.ContainerUpdate
	for _, u := range resp.GetUpdate() {
		if u.GetContainerId() == c.ID && u.GetLinux().GetResources() != nil {
			r = u.GetLinux().GetResources().ToOCI()
			continue
		}
		others = append(others, u)
	}
	if failed := n.applyUpdates(ctx, others, c.ID); len(failed) > 0 {
		return nil, fmt.Errorf("NRI plugins asked for updates of other containers that failed: %v", failed)
	}
	return r, nil
}

// PostUpdateContainer tells plugins the update was applied.
func (n *NRI) PostUpdateContainer(ctx context.Context, c *container.Container) {
	if n == nil {
		return
	}
	unlock := n.shared()
	err := n.a.PostUpdateContainer(ctx, &nri.PostUpdateContainerRequest{Pod: n.pod(c), Container: containerInfo(c, nil)})
	unlock()
	if err != nil {
		n.log.Warn("NRI plugin failed PostUpdateContainer", "container", c.ID, "err", err)
	}
}

// StopContainer tells plugins a container stopped, whether asked to or
// by itself. Updates they ask for in return are applied in the
// background: the caller holds the container's lock, and an update of a
// container that is stopping at the same moment would wait on it.
func (n *NRI) StopContainer(ctx context.Context, c *container.Container) {
	if n == nil {
		return
	}
	unlock := n.shared()
	resp, err := n.a.StopContainer(ctx, &nri.StopContainerRequest{Pod: n.pod(c), Container: containerInfo(c, nil)})
	unlock()
	if err != nil {
		n.log.Warn("NRI plugin failed StopContainer", "container", c.ID, "err", err)
		return
	}
	if updates := resp.GetUpdate(); len(updates) > 0 {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			uctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if failed := n.applyUpdates(uctx, updates, c.ID); len(failed) > 0 {
				n.log.Warn("updates NRI plugins asked for after a container stopped failed", "container", c.ID, "failed", failed)
			}
		}()
	}
}

// RemoveContainer tells plugins a container is gone.
func (n *NRI) RemoveContainer(ctx context.Context, c *container.Container) {
	if n == nil {
		return
	}
	ci := containerInfo(c, nil)
	ci.State = nri.ContainerState_CONTAINER_STOPPED
	unlock := n.shared()
	err := n.a.RemoveContainer(ctx, &nri.RemoveContainerRequest{Pod: n.pod(c), Container: ci})
	unlock()
	if err != nil {
		n.log.Warn("NRI plugin failed RemoveContainer", "container", c.ID, "err", err)
	}
}

// --- synchronisation and plugin-initiated changes ---

// updateFromPlugin applies updates a plugin asks for on its own, and
// returns those that failed.
func (n *NRI) updateFromPlugin(ctx context.Context, updates []*nri.ContainerUpdate) ([]*nri.ContainerUpdate, error) {
	var failed []*nri.ContainerUpdate
	for _, u := range updates {
		if err := n.applyUpdate(ctx, u); err != nil {
			failed = append(failed, u)
		}
	}
	return failed, nil
}

// applyUpdates applies resource updates of containers other than self;
// it returns the ids of those that failed and were not allowed to.
func (n *NRI) applyUpdates(ctx context.Context, updates []*nri.ContainerUpdate, self string) []string {
	var failed []string
	for _, u := range updates {
		if u.GetContainerId() == self {
			continue
		}
		if err := n.applyUpdate(ctx, u); err != nil && !u.GetIgnoreFailure() {
			failed = append(failed, u.GetContainerId())
		}
	}
	return failed
}

func (n *NRI) applyUpdate(ctx context.Context, u *nri.ContainerUpdate) error {
	res := u.GetLinux().GetResources()
	if res == nil {
		return nil
	}
	err := n.containers.ApplyResources(ctx, u.GetContainerId(), res.ToOCI())
	if err != nil {
		n.log.Warn("NRI update of a container failed", "container", u.GetContainerId(), "err", err)
	} else {
		n.log.Info("container resources updated as an NRI plugin asked", "container", u.GetContainerId())
	}
	return err
}

// evict stops the containers plugins want gone; the kubelet sees them
// exit and acts on it.
func (n *NRI) evict(ctx context.Context, evictions []*nri.ContainerEviction) {
	for _, e := range evictions {
		n.log.Warn("evicting a container as an NRI plugin asked", "container", e.GetContainerId(), "reason", e.GetReason())
		if err := n.containers.Stop(ctx, e.GetContainerId(), 0); err != nil {
			n.log.Error("evict container", "container", e.GetContainerId(), "err", err)
		}
	}
}
