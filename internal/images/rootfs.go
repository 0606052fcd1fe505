package images

import (
	"errors"
	"fmt"

	"go.podman.io/storage"

	"github.com/floe-cri/floe/internal/errdefs"
)

// CreateContainerLayer creates containerID's writable layer on top of the
// image ref names and mounts it, returning the mountpoint (the container's
// rootfs). name is recorded as the store's container name, so podman shows
// something readable; it must be unique in the store.
func (s *Service) CreateContainerLayer(ref, containerID, name string) (string, error) {
	img, _, _, err := s.lookup(ref)
	if err != nil {
		return "", err
	}
	var names []string
	if name != "" {
		names = []string{name}
	}
	// The writable layer gets the container's id: the store records the
	// layer before the container, so a crash between the two leaves a layer
	// no container names, and only a known id lets DeleteContainerLayer
	// find it.
	if _, err := s.store.CreateContainer(containerID, names, img.ID, containerID, "", nil); err != nil {
		if errors.Is(err, storage.ErrDuplicateID) || errors.Is(err, storage.ErrDuplicateName) {
			return "", errdefs.AlreadyExists("container layer %s (%s): %v", containerID, name, err)
		}
		return "", fmt.Errorf("create container layer %s on image %s: %w", containerID, img.ID, err)
	}
	mp, err := s.store.Mount(containerID, "")
	if err != nil {
		if derr := s.store.DeleteContainer(containerID); derr != nil {
			s.log.Warn("cannot remove a container layer that failed to mount", "container", containerID, "err", derr)
		}
		return "", fmt.Errorf("mount container layer %s: %w", containerID, err)
	}
	s.log.Debug("container layer mounted", "container", containerID, "image", img.ID, "mountpoint", mp)
	return mp, nil
}

// MountContainerLayer mounts an existing container layer again, for
// example after a reboot cleared the mounts.
func (s *Service) MountContainerLayer(containerID string) (string, error) {
	mp, err := s.store.Mount(containerID, "")
	if isUnknownContainer(err) {
		return "", errdefs.NotFound("container layer %s not found", containerID)
	}
	if err != nil {
		return "", fmt.Errorf("mount container layer %s: %w", containerID, err)
	}
	return mp, nil
}

// UnmountContainerLayer unmounts a container's rootfs whatever its mount
// count. Unknown or unmounted layers are not an error.
func (s *Service) UnmountContainerLayer(containerID string) error {
	_, err := s.store.Unmount(containerID, true)
	if err == nil || isUnknownContainer(err) || errors.Is(err, storage.ErrLayerNotMounted) {
		return nil
	}
	return fmt.Errorf("unmount container layer %s: %w", containerID, err)
}

// DeleteContainerLayer unmounts and deletes a container's writable layer.
// An unknown container is not an error. A layer without its container (a
// crash inside CreateContainerLayer) is deleted too.
func (s *Service) DeleteContainerLayer(containerID string) error {
	if err := s.UnmountContainerLayer(containerID); err != nil {
		return err
	}
	err := s.store.DeleteContainer(containerID)
	if err == nil {
		return nil
	}
	if !isUnknownContainer(err) {
		return fmt.Errorf("delete container layer %s: %w", containerID, err)
	}
	if _, lerr := s.store.Layer(containerID); lerr != nil {
		return nil // neither container nor layer: nothing was made
	}
	if _, err := s.store.Unmount(containerID, true); err != nil && !isUnknownContainer(err) && !errors.Is(err, storage.ErrLayerNotMounted) {
		return fmt.Errorf("unmount orphaned container layer %s: %w", containerID, err)
	}
	if err := s.store.DeleteLayer(containerID); err != nil && !isUnknownContainer(err) {
		return fmt.Errorf("delete orphaned container layer %s: %w", containerID, err)
	}
	s.log.Info("deleted a container layer whose container was never recorded", "container", containerID)
	return nil
}

// isUnknownContainer is true for the errors the store gives for an id it
// has no container (or layer) for.
func isUnknownContainer(err error) bool {
	return errors.Is(err, storage.ErrContainerUnknown) || errors.Is(err, storage.ErrNotAContainer) ||
		errors.Is(err, storage.ErrLayerUnknown) || errors.Is(err, storage.ErrNotALayer)
}
