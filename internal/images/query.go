package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	ociv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/storage"

	"github.com/floe-cri/floe/internal/errdefs"
)

// Image is what floe reports about a stored image.
type Image struct {
	ID             string
	RepoTags       []string
	RepoDigests    []string
	Size           uint64
	Pinned         bool
	ManifestDigest digest.Digest
	Created        time.Time
	// Config is the image configuration (User, Env, Entrypoint, ...).
	Config *ociv1.Image
	// Layers are bottom first.
	Layers []Layer
}

// Layer is one layer of an image.
type Layer struct {
	ID                 string        `json:"id"`
	CompressedDigest   digest.Digest `json:"compressedDigest,omitempty"`
	UncompressedDigest digest.Digest `json:"uncompressedDigest,omitempty"`
	UncompressedSize   int64         `json:"uncompressedSize"`
}

// List returns every image, or only the one filter names.
func (s *Service) List(filter string) ([]*Image, error) {
	if filter != "" {
		img, err := s.Status(filter)
		if errdefs.KindOf(err) == errdefs.KindNotFound {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []*Image{img}, nil
	}
	imgs, err := s.store.Images()
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make([]*Image, 0, len(imgs))
	for i := range imgs {
		img, err := s.describe(&imgs[i])
		if err != nil {
			// An image podman is still writing or deleting; skip it
			// rather than failing the whole list.
			s.log.Debug("skipping unreadable image", "id", imgs[i].ID, "err", err)
			continue
		}
		out = append(out, img)
	}
	return out, nil
}

// Status describes one image; a NotFound error when there is none.
func (s *Service) Status(ref string) (*Image, error) {
	img, _, _, err := s.lookup(ref)
	if err != nil {
		return nil, err
	}
	return s.describe(img)
}

func (s *Service) describe(img *storage.Image) (*Image, error) {
	out := &Image{ID: img.ID, ManifestDigest: img.Digest, Created: img.Created}
	digests := img.Digests
	if len(digests) == 0 && img.Digest != "" {
		digests = []digest.Digest{img.Digest}
	}
	repos := []string{}
	for _, n := range img.Names {
		ref, err := reference.ParseNormalizedNamed(n)
		if err != nil {
			continue
		}
		if _, ok := ref.(reference.Tagged); ok {
			out.RepoTags = append(out.RepoTags, ref.String())
		}
		if !slices.Contains(repos, ref.Name()) {
			repos = append(repos, ref.Name())
		}
	}
	for _, r := range repos {
		for _, d := range digests {
			out.RepoDigests = append(out.RepoDigests, r+"@"+d.String())
		}
	}
	size, err := s.store.ImageSize(img.ID)
	if err != nil {
		return nil, fmt.Errorf("image %s size: %w", img.ID, err)
	}
	out.Size = uint64(max(size, 0))
	cfg, err := s.config(img)
	if err != nil {
		return nil, err
	}
	out.Config = cfg
	for id := img.TopLayer; id != ""; {
		l, err := s.store.Layer(id)
		if err != nil {
			return nil, fmt.Errorf("image %s layer %s: %w", img.ID, id, err)
		}
		out.Layers = append(out.Layers, Layer{ID: l.ID, CompressedDigest: l.CompressedDigest, UncompressedDigest: l.UncompressedDigest, UncompressedSize: l.UncompressedSize})
		id = l.Parent
	}
	slices.Reverse(out.Layers)
	out.Pinned = s.pinned(img.Names)
	return out, nil
}

// config reads the image configuration containers/image stored as a big
// data item named by the config digest in the manifest.
func (s *Service) config(img *storage.Image) (*ociv1.Image, error) {
	raw, err := s.store.ImageBigData(img.ID, storage.ImageDigestBigDataKey)
	if err != nil {
		return nil, fmt.Errorf("image %s manifest: %w", img.ID, err)
	}
	m, err := manifest.FromBlob(raw, manifest.GuessMIMEType(raw))
	if err != nil {
		return nil, fmt.Errorf("image %s manifest: %w", img.ID, err)
	}
	blob, err := s.store.ImageBigData(img.ID, m.ConfigInfo().Digest.String())
	if err != nil {
		return nil, fmt.Errorf("image %s config: %w", img.ID, err)
	}
	var cfg ociv1.Image
	if err := json.Unmarshal(blob, &cfg); err != nil {
		return nil, fmt.Errorf("image %s config: %w", img.ID, err)
	}
	return &cfg, nil
}

// pinned matches names against images.pinned: exact names, or prefixes
// written with a trailing "*".
func (s *Service) pinned(names []string) bool {
	for _, p := range s.opts.Pinned {
		for _, n := range names {
			if prefix, ok := strings.CutSuffix(p, "*"); ok {
				if strings.HasPrefix(n, prefix) {
					return true
				}
				continue
			}
			want := p
			if ref, err := reference.ParseNormalizedNamed(p); err == nil {
				want = reference.TagNameOnly(ref).String()
			}
			if n == want || n == p {
				return true
			}
		}
	}
	return false
}

// Remove deletes an image named by id, id prefix, tag or digest. Naming
// one tag of an image that has others only removes that tag. An image
// that is already gone is not an error (the CRI wants this idempotent);
// an image a container uses is a FailedPrecondition naming the container.
func (s *Service) Remove(ref string) error {
	img, how, name, err := s.lookup(ref)
	if errdefs.KindOf(err) == errdefs.KindNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if how == matchTag {
		others := 0
		for _, n := range img.Names {
			if n == name {
				continue
			}
			if r, err := reference.ParseNormalizedNamed(n); err == nil {
				if _, ok := r.(reference.Tagged); ok {
					others++
				}
			}
		}
		if others > 0 {
			if err := s.store.RemoveNames(img.ID, []string{name}); err != nil {
				return fmt.Errorf("untag %s: %w", name, err)
			}
			s.log.Info("untagged image", "id", img.ID, "name", name)
			return nil
		}
	}
	ctrs, err := s.store.Containers()
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, c := range ctrs {
		if c.ImageID == img.ID {
			return errdefs.FailedPrecondition("image %s (%s) is in use by container %s", ref, img.ID, c.ID)
		}
	}
	if _, err := s.store.DeleteImage(img.ID, true); err != nil {
		if errors.Is(err, storage.ErrImageUnknown) {
			return nil
		}
		if errors.Is(err, storage.ErrImageUsedByContainer) {
			return errdefs.FailedPrecondition("image %s (%s) is in use by a container: %v", ref, img.ID, err)
		}
		return fmt.Errorf("remove image %s: %w", img.ID, err)
	}
	s.log.Info("removed image", "id", img.ID, "ref", ref)
	return nil
}

// FsUsage is the disk use of one part of the store.
type FsUsage struct {
	Mountpoint string
	UsedBytes  uint64
	InodesUsed uint64
	Timestamp  time.Time
}

// FsInfo measures the store: image layers and metadata, and separately the
// containers' writable layers. Hard-linked files count once.
func (s *Service) FsInfo() (images, containers FsUsage, err error) {
	root := s.store.GraphRoot()
	driver := s.store.GraphDriverName()
	ctrs, err := s.store.Containers()
	if err != nil {
		return images, containers, fmt.Errorf("list containers: %w", err)
	}
	ctrLayers := map[string]bool{}
	for _, c := range ctrs {
		ctrLayers[c.LayerID] = true
	}
	layers, err := s.store.Layers()
	if err != nil {
		return images, containers, fmt.Errorf("list layers: %w", err)
	}
	imgDirs := []string{filepath.Join(root, driver+"-images"), filepath.Join(root, driver+"-layers")}
	ctrDirs := []string{filepath.Join(root, driver+"-containers")}
	layerDir := filepath.Join(root, driver)
	if driver == "vfs" {
		layerDir = filepath.Join(root, "vfs", "dir")
	}
	for _, l := range layers {
		dir := filepath.Join(layerDir, l.ID)
		if ctrLayers[l.ID] {
			ctrDirs = append(ctrDirs, dir)
		} else {
			imgDirs = append(imgDirs, dir)
		}
	}
	now := time.Now()
	images = diskUsage(imgDirs)
	images.Mountpoint, images.Timestamp = root, now
	containers = diskUsage(ctrDirs)
	containers.Mountpoint, containers.Timestamp = root, now
	return images, containers, nil
}

// diskUsage walks dirs without following mounts or symlinks. Entries that
// vanish during the walk (a concurrent removal) are skipped.
func diskUsage(dirs []string) FsUsage {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var u FsUsage
	for _, d := range dirs {
		rootDev := uint64(0)
		if st, err := os.Lstat(d); err == nil {
			rootDev = uint64(st.Sys().(*syscall.Stat_t).Dev)
		}
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			info, err := e.Info()
			if err != nil {
				return nil
			}
			st := info.Sys().(*syscall.Stat_t)
			if e.IsDir() && uint64(st.Dev) != rootDev {
				return filepath.SkipDir // a mounted container rootfs
			}
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
			u.InodesUsed++
			u.UsedBytes += uint64(st.Blocks) * 512
			return nil
		})
	}
	return u
}

// RepoDigestFor is the image's repo digest ("repo@sha256:...") for the
// repository name (as the user wrote it, short names normalized) when the
// image has one there, else its first repo digest, else its ID. It is the
// CRI image_ref of a container: the kubelet shows it as the pod's imageID.
func (img *Image) RepoDigestFor(name string) string {
	if ref, err := reference.ParseNormalizedNamed(name); err == nil {
		for _, d := range img.RepoDigests {
			if repo, _, ok := strings.Cut(d, "@"); ok && repo == ref.Name() {
				return d
			}
		}
	}
	if len(img.RepoDigests) > 0 {
		return img.RepoDigests[0]
	}
	return img.ID
}

// IsIDOf reports whether ref names img by its ID ("<id>", "sha256:<id>"
// or a unique ID prefix the store resolved) rather than by a name.
func (img *Image) IsIDOf(ref string) bool {
	ref = strings.TrimPrefix(ref, "sha256:")
	return len(ref) >= 3 && !strings.ContainsAny(ref, ":/@") && strings.HasPrefix(img.ID, ref)
}
