package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/checkpoint"
	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/errdefs"
)

// CheckpointContainer (KEP-2008, forensic checkpointing) writes a running
// container's state to an archive. Everything is checked before the
// container is touched: the request, the container, then whether criu can
// work on this host at all, so a host that cannot checkpoint answers
// FailedPrecondition with criu's own reason instead of a failed dump.
func (s *Server) CheckpointContainer(ctx context.Context, req *runtimeapi.CheckpointContainerRequest) (*runtimeapi.CheckpointContainerResponse, error) {
	if err := s.needContainers(req.ContainerId); err != nil {
		return nil, err
	}
	if req.Location == "" {
		return nil, invalid("location", "must not be empty (the archive to write)")
	}
	if !filepath.IsAbs(req.Location) {
		return nil, invalid("location", "%q is not an absolute path", req.Location)
	}
	if req.Timeout < 0 {
		return nil, invalid("timeout", "%d is negative", req.Timeout)
	}
	c, err := s.deps.Containers.Get(req.ContainerId)
	if err != nil {
		return nil, err
	}
	if c.State != container.StateRunning {
		return nil, errdefs.FailedPrecondition("container %s is %s; only a running container can be checkpointed", c.ID, c.State)
	}
	if err := s.checkpointSupported(fmt.Sprintf("checkpoint of container %s", c.ID)); err != nil {
		return nil, err
	}
	return nil, status.Errorf(codes.Unimplemented, "checkpoint of container %s: %v", c.ID, checkpoint.ErrNotImplemented)
}

func (s *Server) checkpointSupported(what string) error {
	if s.deps.Checkpoint == nil {
		return status.Errorf(codes.Unimplemented, "%s: checkpoint/restore support was not detected on this floe", what)
	}
	return s.deps.Checkpoint.Check(what)
}

// restoreRequested reports whether a CreateContainer asks to restore a
// checkpoint: its image is the path of an archive on the node, as
// CRI-O takes it (an image reference is never an absolute path).
func restoreRequested(cfg *runtimeapi.ContainerConfig) (string, bool) {
	ref := cfg.GetImage().GetImage()
	if !filepath.IsAbs(ref) {
		return "", false
	}
	st, err := os.Stat(ref)
	return ref, err == nil && st.Mode().IsRegular()
}

// checkRestore refuses a restore before anything is made.
func (s *Server) checkRestore(cfg *runtimeapi.ContainerConfig) error {
	archive, ok := restoreRequested(cfg)
	if !ok {
		return nil
	}
	what := fmt.Sprintf("config.image.image: restore from checkpoint archive %s", archive)
	if err := s.checkpointSupported(what); err != nil {
		return err
	}
	return status.Errorf(codes.Unimplemented, "%s: %v", what, checkpoint.ErrNotImplemented)
}
