package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/floe-cri/floe/internal/checkpoint"
	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/monitor"
)

// CheckpointOptions describe one CheckpointContainer.
type CheckpointOptions struct {
	// Location is the archive to write (absolute; its directory exists).
	Location string
	// Timeout bounds the criu dump; 0 leaves the runtime's default.
	Timeout time.Duration
	// CRIUVersion is recorded in the archive.
	CRIUVersion string
}

// CheckpointResult is what a checkpoint measured.
type CheckpointResult struct {
	Size int64
	// Dump is how long criu took (the container is frozen for part of
	// it); Total includes the rootfs diff and the archive.
	Dump, Total time.Duration
}

// CheckpointSupport says why a container's handler cannot checkpoint.
func (m *Manager) CheckpointSupport(idOrPrefix string) error {
	c, err := m.resolve(idOrPrefix)
	if err != nil {
		return err
	}
	mon, ok := m.opts.Runtimes[c.Handler]
	if !ok {
		return errdefs.FailedPrecondition("runtime handler %q of container %s has no monitor", c.Handler, c.ID)
	}
	if err := mon.CheckpointSupport(); err != nil {
		return errdefs.FailedPrecondition("container %s of runtime handler %q cannot be checkpointed: %v", c.ID, c.Handler, err)
	}
	return nil
}

// HandlerCheckpointSupport is CheckpointSupport for a handler, before
// any container of it exists (a restore).
func (m *Manager) HandlerCheckpointSupport(handler string) error {
	mon, ok := m.opts.Runtimes[handler]
	if !ok {
		return errdefs.FailedPrecondition("runtime handler %q has no monitor", handler)
	}
	if err := mon.CheckpointSupport(); err != nil {
		return errdefs.FailedPrecondition("runtime handler %q cannot restore checkpoints: %v", handler, err)
	}
	return nil
}

// Checkpoint writes a running container's state to an archive (KEP-2008
// forensic checkpointing): criu dumps its processes and leaves them
// running, then its rootfs changes, its spec and its record are added.
// Work happens in a directory next to the archive, removed whatever
// happens; the archive appears only complete.
func (m *Manager) Checkpoint(ctx context.Context, idOrPrefix string, opts CheckpointOptions) (*CheckpointResult, error) {
	start := time.Now()
	// Under the operation lock: no update, start or removal meanwhile.
	c, mon, unlock, err := m.lockedRunning(idOrPrefix, "a checkpoint")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := mon.CheckpointSupport(); err != nil {
		return nil, errdefs.FailedPrecondition("container %s of runtime handler %q cannot be checkpointed: %v", c.ID, c.Handler, err)
	}
	sb, err := m.opts.Sandboxes.Get(c.SandboxID)
	if err != nil {
		return nil, err
	}
	log := m.log.With("container", c.ID, "pod", c.SandboxID)
	tmp, err := os.MkdirTemp(filepath.Dir(opts.Location), ".floe-checkpoint-"+c.ID[:12]+"-")
	if err != nil {
		return nil, fmt.Errorf("checkpoint container %s: work directory: %w", c.ID, err)
	}
	defer os.RemoveAll(tmp)
	stage, work := filepath.Join(tmp, "archive"), filepath.Join(tmp, "work")
	for _, d := range []string{stage, work} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, fmt.Errorf("checkpoint container %s: %w", c.ID, err)
		}
	}
	dumpStart := time.Now()
	if err := mon.Checkpoint(ctx, c.Monitor, monitor.CheckpointOptions{
		ImageDir: filepath.Join(stage, checkpoint.ImagesDir), WorkDir: work, LeaveRunning: true, Timeout: opts.Timeout,
	}); err != nil {
		return nil, fmt.Errorf("checkpoint container %s: %w", c.ID, err)
	}
	dump := time.Since(dumpStart)
	if err := m.writeRootfsDiff(c, stage); err != nil {
		return nil, fmt.Errorf("checkpoint container %s: %w", c.ID, err)
	}
	spec, err := os.ReadFile(filepath.Join(c.Bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("checkpoint container %s: read its spec: %w", c.ID, err)
	}
	if err := os.WriteFile(filepath.Join(stage, checkpoint.SpecFile), spec, 0o600); err != nil {
		return nil, fmt.Errorf("checkpoint container %s: %w", c.ID, err)
	}
	raw, err := json.Marshal(c.Spec)
	if err != nil {
		return nil, fmt.Errorf("checkpoint container %s: %w", c.ID, err)
	}
	cfg := checkpoint.Config{
		Format: checkpoint.FormatVersion, Runtime: "floe", ID: c.ID, Name: c.Spec.Name, PodID: c.SandboxID,
		PodName: sb.Spec.Name, PodNamespace: sb.Spec.Namespace,
		Image: c.Spec.Image, ImageID: c.ImageID, ImageRef: c.ImageRef, ImageName: c.ReportedImage(), Handler: c.Handler,
		CreatedAt: time.Unix(0, c.CreatedAt), CheckpointedAt: dumpStart, CRIUVersion: opts.CRIUVersion, Container: raw,
	}
	st := checkpoint.Status{State: string(c.State), Pid: c.Monitor.Pid, StartedAt: time.Unix(0, c.StartedAt), LeftRunning: true, DumpDuration: dump.String()}
	if err := checkpoint.WriteJSON(stage, checkpoint.ConfigFile, cfg); err != nil {
		return nil, fmt.Errorf("checkpoint container %s: %w", c.ID, err)
	}
	if err := checkpoint.WriteJSON(stage, checkpoint.StatusFile, st); err != nil {
		return nil, fmt.Errorf("checkpoint container %s: %w", c.ID, err)
	}
	size, err := checkpoint.WriteArchive(stage, opts.Location)
	if err != nil {
		return nil, fmt.Errorf("checkpoint container %s: %w", c.ID, err)
	}
	res := &CheckpointResult{Size: size, Dump: dump, Total: time.Since(start)}
	log.Info("container checkpointed", "archive", opts.Location, "bytes", size, "dump", dump, "total", res.Total)
	return res, nil
}

// writeRootfsDiff adds the container's rootfs changes to the staged
// archive.
func (m *Manager) writeRootfsDiff(c *Container, stage string) error {
	changes, err := m.opts.Images.ContainerChanges(c.ID)
	if err != nil {
		return fmt.Errorf("rootfs changes: %w", err)
	}
	var changed, deleted []string
	for _, ch := range changes {
		if ch.Deleted {
			deleted = append(deleted, ch.Path)
		} else {
			changed = append(changed, ch.Path)
		}
	}
	return checkpoint.WriteRootfsDiff(c.Rootfs, changed, deleted,
		filepath.Join(stage, checkpoint.RootfsDiffFile), filepath.Join(stage, checkpoint.DeletedFile))
}

// RestoreRequest is what a CreateContainer restoring an archive asks
// besides the archive: the new container's identity. Everything else
// comes from the checkpointed container.
type RestoreRequest struct {
	Archive     string
	Name        string
	Attempt     uint32
	Labels      map[string]string
	Annotations map[string]string
	LogPath     string
}

// CreateRestored creates, in a ready pod, a container from a checkpoint
// archive: the checkpointed container's config with the request's name,
// its image's rootfs with the archive's changes, and criu's images in the
// bundle. StartContainer then restores its processes.
func (m *Manager) CreateRestored(ctx context.Context, sandboxID string, req RestoreRequest) (string, error) {
	cfg, err := checkpoint.ReadArchiveConfig(req.Archive)
	if err != nil {
		return "", err
	}
	var spec Spec
	if err := json.Unmarshal(cfg.Container, &spec); err != nil {
		return "", errdefs.InvalidArgument("config.image.image", "checkpoint archive %s: its container config: %v", req.Archive, err)
	}
	if req.Name != "" {
		spec.Name = req.Name
	}
	spec.Attempt = req.Attempt
	if len(req.Labels) > 0 {
		spec.Labels = req.Labels
	}
	if len(req.Annotations) > 0 {
		spec.Annotations = req.Annotations
	}
	spec.LogPath = req.LogPath
	// The rootfs is the checkpointed container's image; the container
	// reports the archive as its image, as the pod asked.
	spec.Image, spec.UserImage = cfg.ImageID, req.Archive
	spec.Restore = &RestoreSource{Archive: req.Archive, FromID: cfg.ID}
	if _, err := m.opts.Images.Status(cfg.ImageID); err != nil {
		if errdefs.KindOf(err) == errdefs.KindNotFound {
			return "", errdefs.NotFound("checkpoint archive %s needs image %s (%s) on this node; pull it first", req.Archive, cfg.ImageName, cfg.ImageID)
		}
		return "", err
	}
	return m.Create(ctx, sandboxID, spec)
}

// prepareRestore unpacks the archive of a restored container into its
// bundle and replays its rootfs changes, before the bundle's spec is
// written; the criu images stay in the bundle for StartContainer.
func (m *Manager) prepareRestore(c *Container) error {
	dir := filepath.Join(c.Bundle, "checkpoint-archive")
	if err := os.MkdirAll(c.Bundle, 0o700); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	cfg, err := checkpoint.Extract(c.Spec.Restore.Archive, dir)
	if err != nil {
		return err
	}
	if cfg.ID != c.Spec.Restore.FromID {
		return errdefs.FailedPrecondition("checkpoint archive %s changed since the request: it now holds container %s", c.Spec.Restore.Archive, cfg.ID)
	}
	if err := checkpoint.ApplyRootfsDiff(c.Rootfs, filepath.Join(dir, checkpoint.RootfsDiffFile), filepath.Join(dir, checkpoint.DeletedFile)); err != nil {
		return err
	}
	c.RestoreImages = filepath.Join(dir, checkpoint.ImagesDir)
	return nil
}

// startRestored is StartContainer of a restored container: conmon runs
// `runc restore`, which creates the container and brings its processes
// back running where they were checkpointed. The criu images are removed
// once they are restored (they may be as large as the container's
// memory).
func (m *Manager) startRestored(ctx context.Context, c *Container, mon Runtime) (*monitor.Container, error) {
	start := time.Now()
	mc, err := mon.Create(ctx, monitor.CreateOptions{
		ID: c.ID, Bundle: c.Bundle, LogPath: c.LogPath, RestoreFrom: c.RestoreImages,
		Terminal: c.Spec.OCI.TTY, Stdin: c.Spec.OCI.Stdin, LeaveStdinOpen: c.Spec.OCI.Stdin && !c.Spec.OCI.StdinOnce,
	})
	if err != nil {
		return nil, fmt.Errorf("restore container %s from %s: %w", c.ID, c.Spec.Restore.Archive, err)
	}
	if err := os.RemoveAll(filepath.Dir(c.RestoreImages)); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.log.Warn("remove restored checkpoint images", "container", c.ID, "err", err)
	}
	m.log.Info("container restored from checkpoint", "container", c.ID, "pod", c.SandboxID, "archive", c.Spec.Restore.Archive, "from", c.Spec.Restore.FromID, "pid", mc.Pid, "took", time.Since(start))
	return mc, nil
}
