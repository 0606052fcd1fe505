package images

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.podman.io/storage"
	"golang.org/x/sys/unix"

	"github.com/floe-cri/floe/internal/errdefs"
)

// Image volumes (KEP-4639): a container may mount another image's root
// filesystem, read-only. The store mounts an image's top layer once and
// counts its users (the count lives in the store's run root, so it
// outlives a floe restart, as the mount does); floe adds one count per
// hold and remembers in memory which holder (a container id) holds which
// image, so that RemoveImage can refuse an image in use and a release is
// never counted twice in one process. The holders are rebuilt at startup
// from the container records (AdoptImageMount).

// imageHolds maps image id -> holder -> number of holds.
type imageHolds map[string]map[string]int

// MountImage mounts the root filesystem of the image imageID read-only
// for holder and returns its mountpoint. Every successful call must be
// paired with one UnmountImage(imageID, holder).
func (s *Service) MountImage(imageID, holder string) (string, error) {
	s.imageMountMu.Lock()
	defer s.imageMountMu.Unlock()
	mp, err := s.store.MountImage(imageID, nil, "")
	if errors.Is(err, storage.ErrImageUnknown) {
		return "", errdefs.NotFound("image %s is not present", imageID)
	}
	if err != nil {
		return "", fmt.Errorf("mount image %s read-only: %w", imageID, err)
	}
	if s.holds == nil {
		s.holds = imageHolds{}
	}
	if s.holds[imageID] == nil {
		s.holds[imageID] = map[string]int{}
	}
	s.holds[imageID][holder]++
	s.log.Debug("image mounted for an image volume", "image", imageID, "container", holder, "mountpoint", mp)
	return mp, nil
}

// AdoptImageMount records, without touching the store, a hold that a
// container record says holder took before floe restarted.
func (s *Service) AdoptImageMount(imageID, holder string) {
	s.imageMountMu.Lock()
	defer s.imageMountMu.Unlock()
	if s.holds == nil {
		s.holds = imageHolds{}
	}
	if s.holds[imageID] == nil {
		s.holds[imageID] = map[string]int{}
	}
	s.holds[imageID][holder]++
}

// UnmountImage releases one of holder's holds on imageID; the store
// unmounts the image when its last user is gone. Releasing a hold the
// holder does not have is a no-op, so a repeated release is harmless. A
// store count already at zero (a reboot emptied the run root, or podman
// unmounted it) is not decremented further.
func (s *Service) UnmountImage(imageID, holder string) error {
	s.imageMountMu.Lock()
	defer s.imageMountMu.Unlock()
	if s.holds[imageID][holder] == 0 {
		return nil
	}
	forget := func() {
		s.holds[imageID][holder]--
		if s.holds[imageID][holder] == 0 {
			delete(s.holds[imageID], holder)
		}
		if len(s.holds[imageID]) == 0 {
			delete(s.holds, imageID)
		}
	}
	img, err := s.store.Image(imageID)
	if errors.Is(err, storage.ErrImageUnknown) {
		forget() // deleted behind floe's back; its layers went with it
		return nil
	}
	if err != nil {
		return fmt.Errorf("unmount image %s: %w", imageID, err)
	}
	if n, err := s.store.Mounted(img.TopLayer); err == nil && n == 0 {
		forget()
		return nil
	}
	if _, err := s.store.UnmountImage(imageID, false); err != nil && !errors.Is(err, storage.ErrLayerNotMounted) && !errors.Is(err, storage.ErrLayerUnknown) {
		return fmt.Errorf("unmount image %s: %w", imageID, err)
	}
	forget()
	s.log.Debug("image volume released", "image", imageID, "container", holder)
	return nil
}

// imageVolumeHolders lists who holds imageID as an image volume.
func (s *Service) imageVolumeHolders(imageID string) []string {
	s.imageMountMu.Lock()
	defer s.imageMountMu.Unlock()
	var out []string
	for h := range s.holds[imageID] {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// CheckSubPath validates an image volume's sub path without touching the
// filesystem: it must be relative and stay inside the image (no ".."
// component). It returns the cleaned path; "" and "." mean the root.
func CheckSubPath(sub string) (string, error) {
	if sub == "" {
		return "", nil
	}
	if filepath.IsAbs(sub) {
		return "", fmt.Errorf("%q is not a relative path", sub)
	}
	for _, part := range strings.Split(sub, "/") {
		if part == ".." {
			return "", fmt.Errorf("%q leaves the image's root filesystem", sub)
		}
	}
	clean := filepath.Clean(sub)
	if clean == "." {
		return "", nil
	}
	return clean, nil
}

// ResolveSubPath finds sub inside the image root filesystem mounted at
// root and returns its host path. Symbolic links are followed as if root
// were "/" (openat2 RESOLVE_IN_ROOT), so no link in the image can lead
// outside it. The mount is read-only and image layers never change, so
// the path stays what was resolved. A missing path is NotFound.
func ResolveSubPath(root, sub string) (string, error) {
	clean, err := CheckSubPath(sub)
	if err != nil {
		return "", errdefs.InvalidArgument("image_sub_path", "%v", err)
	}
	if clean == "" {
		return root, nil
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("resolve image root %s: %w", root, err)
	}
	dirfd, err := unix.Open(realRoot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open image root %s: %w", root, err)
	}
	defer unix.Close(dirfd)
	fd, err := unix.Openat2(dirfd, clean, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return "", errdefs.NotFound("sub path %q does not exist in the image", sub)
	}
	if err != nil {
		return "", fmt.Errorf("resolve sub path %q in %s: %w", sub, root, err)
	}
	defer unix.Close(fd)
	real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", fmt.Errorf("resolve sub path %q in %s: %w", sub, root, err)
	}
	if real != realRoot && !strings.HasPrefix(real, realRoot+"/") {
		return "", errdefs.InvalidArgument("image_sub_path", "%q resolves outside the image (%s)", sub, real)
	}
	return real, nil
}
