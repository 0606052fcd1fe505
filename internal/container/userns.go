package container

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/images"
	"github.com/floe-cri/floe/internal/ocispec"
	"github.com/floe-cri/floe/internal/sandbox"
	"github.com/floe-cri/floe/internal/userns"
)

// mappedLayers is what the image store offers containers of pods in a
// user namespace (*images.Service); the core's fake store has none.
type mappedLayers interface {
	CreateMappedContainerLayer(ref, containerID, name string, uids, gids []images.IDMap) (string, error)
}

// createRootfs makes the container's writable layer; in a pod with a user
// namespace the image's layers are mounted idmapped to the pod's root.
func (m *Manager) createRootfs(sb *sandbox.Sandbox, imageID, id, storeName string) (string, error) {
	maps := sb.Spec.UserNS
	if maps == nil {
		return m.opts.Images.CreateContainerLayer(imageID, id, storeName)
	}
	ml, ok := m.opts.Images.(mappedLayers)
	if !ok {
		return "", errdefs.FailedPrecondition("the image store cannot make id-mapped container layers for pod %s", sb.ID)
	}
	conv := func(in []userns.IDMap) []images.IDMap {
		out := make([]images.IDMap, len(in))
		for i, mp := range in {
			out[i] = images.IDMap{ContainerID: int(mp.ContainerID), HostID: int(mp.HostID), Size: int(mp.Size)}
		}
		return out
	}
	return ml.CreateMappedContainerLayer(imageID, id, storeName, conv(maps.UIDs), conv(maps.GIDs))
}

// usernsNamespaces adds the pod's user namespace to the namespaces a
// container joins.
func usernsNamespaces(sb *sandbox.Sandbox, ns *ocispec.Namespaces) {
	if sb.UserPath == "" || sb.Spec.UserNS == nil {
		return
	}
	conv := func(in []userns.IDMap) []specs.LinuxIDMapping {
		out := make([]specs.LinuxIDMapping, len(in))
		for i, mp := range in {
			out[i] = specs.LinuxIDMapping{ContainerID: mp.ContainerID, HostID: mp.HostID, Size: mp.Size}
		}
		return out
	}
	ns.UserPath = sb.UserPath
	ns.UIDMappings = conv(sb.Spec.UserNS.UIDs)
	ns.GIDMappings = conv(sb.Spec.UserNS.GIDs)
}

// usernsDir holds a user-namespaced container's rootfs and idmapped
// volume mounts, inside its bundle.
func usernsDir(c *Container) string { return filepath.Join(c.Bundle, "userns") }

// applyUserns points the spec of a container in a pod with a user
// namespace at mounts its root can use. runc 1.1 mounts the rootfs as the
// pod's root, which cannot search the store's 0700 directories, so the
// rootfs is bound under the bundle (made searchable); every bind mount
// (pod files, volumes, /dev/shm) is replaced by an idmapped copy so host
// root's files show as the pod root's. A source whose file system cannot
// be idmapped is bound as it is (its files show as nobody) and logged.
func (m *Manager) applyUserns(c *Container, sb *sandbox.Sandbox, s *specs.Spec) error {
	if sb.UserPath == "" {
		return nil
	}
	dir := usernsDir(c)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	// MkdirAll leaves existing modes alone; the pod's root must search
	// the bundle and the directory of bundles (listing stays root's).
	for _, d := range []string{filepath.Dir(c.Bundle), c.Bundle} {
		if err := os.Chmod(d, 0o711); err != nil {
			return err
		}
	}
	root := filepath.Join(dir, "rootfs")
	if err := userns.Bind(c.Rootfs, root); err != nil {
		return fmt.Errorf("bind rootfs: %w", err)
	}
	s.Root.Path = root
	for i := range s.Mounts {
		mt := &s.Mounts[i]
		if mt.Type != "bind" || !filepath.IsAbs(mt.Source) {
			continue
		}
		dst := filepath.Join(dir, fmt.Sprintf("m%d", i))
		err := userns.IDMapMount(mt.Source, dst, sb.UserPath)
		if errors.Is(err, userns.ErrNotSupported) {
			m.log.Info("mount source cannot be idmapped; bound as it is, its files show as nobody in the pod", "container", c.ID, "pod", sb.ID, "source", mt.Source, "destination", mt.Destination, "err", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("idmap mount %s for %s: %w", mt.Source, mt.Destination, err)
		}
		mt.Source = dst
	}
	return nil
}

// releaseUserns detaches the mounts applyUserns made; it must run before
// the bundle is removed recursively.
func releaseUserns(c *Container) error {
	if c.Bundle == "" {
		return nil
	}
	// Nothing can be mounted under a directory that does not exist; most
	// containers have none, and reading mountinfo costs milliseconds on a
	// node with hundreds of containers.
	if _, err := os.Lstat(usernsDir(c)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return userns.UnmountUnder(usernsDir(c))
}
