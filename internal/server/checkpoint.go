package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/checkpoint"
	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/sandbox"
)

// defaultCheckpointTimeout bounds a checkpoint whose request sets none:
// criu's dump grows with the container's memory.
const defaultCheckpointTimeout = 5 * time.Minute

// CheckpointContainer (KEP-2008, forensic checkpointing) writes a running
// container's state to an archive and leaves it running. Everything is
// checked before the container is touched: the request, the container,
// its handler, then whether criu can work on this host at all, so a host
// that cannot checkpoint answers FailedPrecondition with criu's own
// reason instead of a failed dump.
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
	if err := s.deps.Containers.CheckpointSupport(c.ID); err != nil {
		return nil, err
	}
	if sb, err := s.deps.Sandboxes.Get(c.SandboxID); err == nil && sb.Spec.UserNS != nil {
		return nil, errdefs.FailedPrecondition("container %s is in pod %s with a user namespace; floe does not checkpoint those", c.ID, sb.ID)
	}
	if err := s.checkpointSupported(fmt.Sprintf("checkpoint of container %s", c.ID)); err != nil {
		return nil, err
	}
	if c.User != nil {
		if err := s.deps.Checkpoint.CheckUser(fmt.Sprintf("checkpoint of container %s", c.ID), c.User.UID, c.User.GID); err != nil {
			return nil, err
		}
	}
	if err := checkLocation(req.Location); err != nil {
		return nil, err
	}
	timeout := defaultCheckpointTimeout
	if req.Timeout > 0 {
		timeout = time.Duration(req.Timeout) * time.Second
	}
	if _, err := s.deps.Containers.Checkpoint(ctx, c.ID, container.CheckpointOptions{
		Location: req.Location, Timeout: timeout, CRIUVersion: s.deps.Checkpoint.Version,
	}); err != nil {
		return nil, err
	}
	return &runtimeapi.CheckpointContainerResponse{}, nil
}

// checkLocation wants the archive's directory to exist and the archive
// itself to be, if anything, a regular file (it is replaced whole).
func checkLocation(location string) error {
	dir, err := os.Stat(filepath.Dir(location))
	if err != nil || !dir.IsDir() {
		return invalid("location", "the directory of %q does not exist", location)
	}
	if st, err := os.Lstat(location); err == nil && !st.Mode().IsRegular() {
		return invalid("location", "%q exists and is not a regular file", location)
	}
	return nil
}

func (s *Server) checkpointSupported(what string) error {
	if s.deps.Checkpoint == nil {
		return status.Errorf(codes.Unimplemented, "%s: checkpoint/restore support was not detected on this floe", what)
	}
	return s.deps.Checkpoint.Check(what)
}

// restoreRequested reports whether a CreateContainer asks to restore a
// checkpoint: its image is the path of a file on the node, as CRI-O takes
// it (an image reference is never an absolute path).
func restoreRequested(cfg *runtimeapi.ContainerConfig) (string, bool) {
	ref := cfg.GetImage().GetImage()
	if !filepath.IsAbs(ref) {
		return "", false
	}
	st, err := os.Stat(ref)
	return ref, err == nil && st.Mode().IsRegular()
}

// createRestored is CreateContainer of a checkpoint archive: a new
// container in the pod, with the request's name, restored from the
// archive when it starts. It is refused before anything is made when
// this host, the pod's handler or the archive cannot do it.
func (s *Server) createRestored(ctx context.Context, sb *sandbox.Sandbox, archive string, cfg *runtimeapi.ContainerConfig) (*runtimeapi.CreateContainerResponse, error) {
	what := fmt.Sprintf("config.image.image: restore from checkpoint archive %s", archive)
	if err := s.checkpointSupported(what); err != nil {
		return nil, err
	}
	if err := s.deps.Probes.Check(sb.Spec.RuntimeHandler); err != nil {
		return nil, err
	}
	if err := s.deps.Containers.HandlerCheckpointSupport(sb.Spec.RuntimeHandler); err != nil {
		return nil, err
	}
	if sb.Spec.UserNS != nil {
		return nil, errdefs.FailedPrecondition("%s: pod %s has a user namespace; floe does not restore into those", what, sb.ID)
	}
	if !checkpoint.IsArchive(archive) {
		return nil, invalid("config.image.image", "%s is neither an image reference nor a checkpoint archive (a tar starting with %s)", archive, checkpoint.ConfigFile)
	}
	id, err := s.deps.Containers.CreateRestored(ctx, sb.ID, container.RestoreRequest{
		Archive: archive, Name: cfg.GetMetadata().GetName(), Attempt: cfg.GetMetadata().GetAttempt(),
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(), LogPath: cfg.GetLogPath(),
	})
	if err != nil {
		return nil, err
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}
