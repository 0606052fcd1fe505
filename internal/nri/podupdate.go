package nri

import (
	"context"
	"fmt"

	nri "github.com/containerd/nri/pkg/adaptation"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/sandbox"
)

// UpdatePodSandbox tells plugins of the pod-level resources the kubelet
// is applying (CRI UpdatePodSandboxResources); an error fails the
// request before it is recorded.
func (n *NRI) UpdatePodSandbox(ctx context.Context, sb *sandbox.Sandbox, overhead, resources *specs.LinuxResources) error {
	if n == nil {
		return nil
	}
	req := &nri.UpdatePodSandboxRequest{Pod: podSandbox(sb)}
	if overhead != nil {
		req.OverheadLinuxResources = nri.FromOCILinuxResources(overhead, nil)
	}
	if resources != nil {
		req.LinuxResources = nri.FromOCILinuxResources(resources, nil)
	}
	err := n.relay("UpdatePodSandbox", func() error {
		_, err := n.a.UpdatePodSandbox(ctx, req)
		return err
	})
	if err != nil {
		return fmt.Errorf("NRI plugin failed UpdatePodSandbox of pod %s: %w", sb.ID, err)
	}
	return nil
}

// PostUpdatePodSandbox tells plugins the pod's update was recorded.
func (n *NRI) PostUpdatePodSandbox(ctx context.Context, sb *sandbox.Sandbox) {
	if n == nil {
		return
	}
	unlock := n.shared()
	err := n.a.PostUpdatePodSandbox(ctx, &nri.PostUpdatePodSandboxRequest{Pod: podSandbox(sb)})
	unlock()
	if err != nil {
		n.log.Warn("NRI plugin failed PostUpdatePodSandbox", "pod", sb.ID, "err", err)
	}
}
