package server

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/errdefs"
)

// Exec returns the streaming URL of an interactive exec in a running
// container (kubectl exec); the session itself is served by the
// streaming server.
func (s *Server) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if err := s.needContainers(req.ContainerId); err != nil {
		return nil, err
	}
	if len(req.Cmd) == 0 {
		return nil, invalid("cmd", "must not be empty")
	}
	c, err := s.streamable(req.ContainerId, "exec")
	if err != nil {
		return nil, err
	}
	return s.deps.Streaming.GetExec(&runtimeapi.ExecRequest{ContainerId: c.ID, Cmd: req.Cmd, Tty: req.Tty, Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr})
}

// Attach returns the streaming URL for attaching to a running
// container's own stdio (kubectl attach).
func (s *Server) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if err := s.needContainers(req.ContainerId); err != nil {
		return nil, err
	}
	c, err := s.streamable(req.ContainerId, "attach")
	if err != nil {
		return nil, err
	}
	if req.Stdin && !c.Spec.OCI.Stdin {
		return nil, errdefs.FailedPrecondition("container %s was not created with stdin; attach with stdin=false", c.ID)
	}
	return s.deps.Streaming.GetAttach(&runtimeapi.AttachRequest{ContainerId: c.ID, Tty: req.Tty, Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr})
}

// streamable checks that the container exists and runs, and that the
// streaming server is up.
func (s *Server) streamable(id, action string) (*container.Container, error) {
	c, err := s.deps.Containers.GetRunning(id, action)
	if err != nil {
		return nil, err
	}
	if s.deps.Streaming == nil {
		return nil, errdefs.FailedPrecondition("the streaming server is not running")
	}
	return c, nil
}
