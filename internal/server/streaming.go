package server

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/sandbox"
)

// PortForward returns the streaming URL for forwarding to the pod's ports.
func (s *Server) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	if req.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "must not be empty")
	}
	for i, p := range req.Port {
		if p <= 0 || p > 65535 {
			return nil, invalid("port", "port[%d] = %d is not a port number (1-65535)", i, p)
		}
	}
	sb, err := s.deps.Sandboxes.Get(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	if sb.State != sandbox.StateReady {
		return nil, errdefs.FailedPrecondition("pod sandbox %s is not ready; cannot forward ports", sb.ID)
	}
	if s.deps.Streaming == nil {
		return nil, errdefs.FailedPrecondition("the streaming server is not running")
	}
	return s.deps.Streaming.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: sb.ID, Port: req.Port})
}

// PodNetns tells the streaming server where a ready pod's network lives
// ("" for a host-network pod).
func PodNetns(m *sandbox.Manager) func(string) (string, error) {
	return func(id string) (string, error) {
		sb, err := m.Get(id)
		if err != nil {
			return "", err
		}
		if sb.State != sandbox.StateReady {
			return "", errdefs.FailedPrecondition("pod sandbox %s is not ready", sb.ID)
		}
		return sb.NetnsPath, nil
	}
}
