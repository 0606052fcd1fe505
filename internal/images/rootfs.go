package images

import (
	"errors"
	"fmt"

	"go.podman.io/storage"
	"go.podman.io/storage/pkg/archive"
	"go.podman.io/storage/pkg/idtools"
	"go.podman.io/storage/types"

	"github.com/floe-cri/floe/internal/errdefs"
)

// CreateContainerLayer creates containerID's writable layer on top of the
// image ref names and mounts it, returning the mountpoint (the container's
// rootfs). name is recorded as the store's container name, so podman shows
// something readable; it must be unique in the store.
func (s *Service) CreateContainerLayer(ref, containerID, name string) (string, error) {
	return s.createContainerLayer(ref, containerID, name, nil)
}

// idMapping is a pod user namespace's mapping for its containers' layers.
type idMapping struct{ uids, gids []IDMap }

// createContainerLayer is the one layer-creation path: CreateContainerLayer
// (mapping nil) and CreateMappedContainerLayer differ only in the store
// options and the refusal of a driver that cannot shift ids.
func (s *Service) createContainerLayer(ref, containerID, name string, mapping *idMapping) (string, error) {
	img, _, _, err := s.lookup(ref)
	if err != nil {
		return "", err
	}
	what := "container layer"
	var opts *storage.ContainerOptions
	if mapping != nil {
		if ok, reason := s.SupportsIDMappedLayers(); !ok {
			return "", errdefs.FailedPrecondition("container layer for a pod in a user namespace: %s", reason)
		}
		what = "id-mapped container layer"
		opts = &storage.ContainerOptions{IDMappingOptions: types.IDMappingOptions{UIDMap: toIDTools(mapping.uids), GIDMap: toIDTools(mapping.gids)}}
	}
	var names []string
	if name != "" {
		names = []string{name}
	}
	// The writable layer gets the container's id: the store records the
	// layer before the container, so a crash between the two leaves a layer
	// no container names, and only a known id lets DeleteContainerLayer
	// find it.
	if _, err := s.store.CreateContainer(containerID, names, img.ID, containerID, "", opts); err != nil {
		if errors.Is(err, storage.ErrDuplicateID) || errors.Is(err, storage.ErrDuplicateName) {
			return "", errdefs.AlreadyExists("container layer %s (%s): %v", containerID, name, err)
		}
		return "", fmt.Errorf("create %s %s on image %s: %w", what, containerID, img.ID, err)
	}
	mp, err := s.store.Mount(containerID, "")
	if err != nil {
		if derr := s.store.DeleteContainer(containerID); derr != nil {
			s.log.Warn("cannot remove a container layer that failed to mount", "container", containerID, "err", derr)
		}
		return "", fmt.Errorf("mount %s %s: %w", what, containerID, err)
	}
	s.log.Debug(what+" mounted", "container", containerID, "image", img.ID, "mountpoint", mp)
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

// IDMap is one range of a user namespace mapping, as containers/storage
// takes it.
type IDMap struct{ ContainerID, HostID, Size int }

// CreateMappedContainerLayer is CreateContainerLayer for a container of a
// pod in a user namespace: the store mounts the image's layers idmapped
// (no copy, no chown) under an upper layer owned by the pod's root, so
// the rootfs shows the image's owners inside the namespace. It refuses
// when the store's driver cannot shift ids at mount time, rather than
// let the store fall back to a chowned copy of the whole image.
func (s *Service) CreateMappedContainerLayer(ref, containerID, name string, uids, gids []IDMap) (string, error) {
	return s.createContainerLayer(ref, containerID, name, &idMapping{uids: uids, gids: gids})
}

// SupportsIDMappedLayers reports whether the store's driver shifts ids at
// mount time (overlay on idmapped lower layers, kernel 5.19+), and why not.
func (s *Service) SupportsIDMappedLayers() (bool, string) {
	d, err := s.store.GraphDriver()
	if err != nil {
		return false, fmt.Sprintf("storage driver: %v", err)
	}
	probe := []idtools.IDMap{{ContainerID: 0, HostID: 1 << 20, Size: 65536}}
	if !d.SupportsShifting(probe, probe) {
		return false, fmt.Sprintf("storage driver %s cannot mount layers idmapped on this kernel", d.String())
	}
	return true, ""
}

func toIDTools(maps []IDMap) []idtools.IDMap {
	out := make([]idtools.IDMap, len(maps))
	for i, m := range maps {
		out[i] = idtools.IDMap{ContainerID: m.ContainerID, HostID: m.HostID, Size: m.Size}
	}
	return out
}

// LayerChange is one path a container's writable layer changed, relative
// to its image: Deleted, or added/modified.
type LayerChange struct {
	Path    string
	Deleted bool
}

// ContainerChanges lists what a container changed in its rootfs (the
// writable layer against the image), as a checkpoint archives it.
func (s *Service) ContainerChanges(containerID string) ([]LayerChange, error) {
	changes, err := s.store.Changes("", containerID)
	if isUnknownContainer(err) {
		return nil, errdefs.NotFound("container layer %s not found", containerID)
	}
	if err != nil {
		return nil, fmt.Errorf("changes of container layer %s: %w", containerID, err)
	}
	out := make([]LayerChange, 0, len(changes))
	for _, c := range changes {
		out = append(out, LayerChange{Path: c.Path, Deleted: c.Kind == archive.ChangeDelete})
	}
	return out, nil
}
