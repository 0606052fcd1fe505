package container

import (
	"errors"
	"fmt"
	"slices"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/images"
)

// resolveImageVolumes finds the image of every image volume in the store
// (the kubelet pulls them before CreateContainer), before any side
// effect. It returns image ids by reference.
func (m *Manager) resolveImageVolumes(spec Spec) (map[string]string, error) {
	ids := map[string]string{}
	for i, mt := range spec.OCI.Mounts {
		if mt.Image == "" {
			continue
		}
		if _, ok := ids[mt.Image]; ok {
			continue
		}
		img, err := m.opts.Images.Status(mt.Image)
		if errdefs.KindOf(err) == errdefs.KindNotFound {
			return nil, errdefs.NotFound("config.mounts[%d].image: image %q of the image volume at %s is not present; pull it first", i, mt.Image, mt.ContainerPath)
		}
		if err != nil {
			return nil, fmt.Errorf("config.mounts[%d].image: image %q: %w", i, mt.Image, err)
		}
		ids[mt.Image] = img.ID
	}
	return ids, nil
}

// mountImageVolumes mounts each image the container's image volumes name
// (once per image reference), records the holds, and resolves each
// volume's sub path. It returns the host path to bind for each image
// volume, by mount index. On error, what it mounted is in c.ImageMounts
// for the caller's undo.
func (m *Manager) mountImageVolumes(c *Container, ids map[string]string) (map[int]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	for _, mt := range c.Spec.OCI.Mounts {
		if mt.Image == "" || c.ImageVolumeID(mt.Image) != "" {
			continue
		}
		mp, err := m.opts.Images.MountImage(ids[mt.Image], c.ID)
		if err != nil {
			return nil, fmt.Errorf("image %q: %w", mt.Image, err)
		}
		c.ImageMounts = append(c.ImageMounts, ImageMount{Image: mt.Image, ImageID: ids[mt.Image], Mountpoint: mp})
	}
	if _, err := m.update(c.ID, func(r *Container) error {
		r.ImageMounts = slices.Clone(c.ImageMounts)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("record image mounts: %w", err)
	}
	sources := map[int]string{}
	for i, mt := range c.Spec.OCI.Mounts {
		if mt.Image == "" {
			continue
		}
		root := ""
		for _, im := range c.ImageMounts {
			if im.Image == mt.Image {
				root = im.Mountpoint
			}
		}
		src, err := images.ResolveSubPath(root, mt.ImageSubPath)
		if err != nil {
			field := fmt.Sprintf("config.mounts[%d].image_sub_path", i)
			switch errdefs.KindOf(err) {
			case errdefs.KindNotFound:
				return nil, errdefs.NotFound("%s: sub path %q does not exist in image %q", field, mt.ImageSubPath, mt.Image)
			case errdefs.KindInvalidArgument:
				return nil, errdefs.InvalidArgument(field, "image %q: %v", mt.Image, err)
			}
			return nil, fmt.Errorf("%s: image %q: %w", field, mt.Image, err)
		}
		sources[i] = src
	}
	return sources, nil
}

// releaseImageMounts gives back the image mounts c holds. The record is
// written without them first: a crash in between leaves one mount held
// (it goes when the image is deleted, or at reboot) rather than releasing
// one twice, which could take another container's mount away while it is
// being created.
func (m *Manager) releaseImageMounts(c *Container) error {
	if len(c.ImageMounts) == 0 {
		return nil
	}
	_, err := m.update(c.ID, func(r *Container) error {
		r.ImageMounts = nil
		return nil
	})
	// Not found: a creation undone before its first record holds none.
	if err != nil && errdefs.KindOf(err) != errdefs.KindNotFound {
		return fmt.Errorf("record release of image mounts: %w", err)
	}
	var errs []error
	for _, im := range c.ImageMounts {
		if err := m.opts.Images.UnmountImage(im.ImageID, c.ID); err != nil {
			errs = append(errs, fmt.Errorf("image %s: %w", im.ImageID, err))
		}
	}
	return errors.Join(errs...)
}
