package images

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/pkg/sysregistriesv2"
	"go.podman.io/storage"

	"github.com/floe-cri/floe/internal/errdefs"
)

// isShortName reports whether name lacks a registry, by the rule docker
// uses: the first path component is a registry when it has a dot or a
// port, or is "localhost".
func isShortName(name string) bool {
	first, _, found := strings.Cut(name, "/")
	if !found {
		return true
	}
	return !strings.ContainsAny(first, ".:") && first != "localhost"
}

// searchRegistries returns where short names are looked up: the
// registries.conf unqualified-search-registries, else floe's default list.
func (s *Service) searchRegistries() ([]string, error) {
	regs, err := sysregistriesv2.UnqualifiedSearchRegistries(s.currentSys())
	if err != nil {
		return nil, fmt.Errorf("read registries.conf: %w", err)
	}
	if len(regs) == 0 {
		regs = s.opts.DefaultSearchRegistries
	}
	return regs, nil
}

// candidates turns what a user wrote into fully qualified references, in
// the order they are tried. A reference without tag or digest gets
// ":latest".
func (s *Service) candidates(name string) ([]reference.Named, error) {
	if name == "" {
		return nil, errdefs.InvalidArgument("image", "empty image reference")
	}
	qualified := []string{name}
	if isShortName(name) {
		regs, err := s.searchRegistries()
		if err != nil {
			return nil, err
		}
		if len(regs) == 0 {
			return nil, errdefs.InvalidArgument("image", "%q is a short name and no search registries are set: "+
				"list registries in unqualified-search-registries in %s (or a drop-in in %s, or floe's %s), "+
				"or in registries.default_search_registries in floe's config, or use a fully qualified name",
				name, s.opts.RegistriesConf, s.opts.RegistriesConfDir, s.opts.RegistriesOverride)
		}
		qualified = qualified[:0]
		for _, r := range regs {
			qualified = append(qualified, r+"/"+name)
		}
	}
	out := make([]reference.Named, 0, len(qualified))
	for _, q := range qualified {
		ref, err := reference.ParseNormalizedNamed(q)
		if err != nil {
			return nil, errdefs.InvalidArgument("image", "%q is not a valid image reference: %v", name, err)
		}
		out = append(out, reference.TagNameOnly(ref))
	}
	return out, nil
}

var hexID = regexp.MustCompile(`^[a-f0-9]{3,64}$`)

// match says how a local lookup found its image.
type match int

const (
	matchID     match = iota // full id or unique id prefix
	matchTag                 // repository:tag
	matchDigest              // repository@digest
)

// lookup finds the local image a user means: an id or unique id prefix
// (optionally "sha256:"-prefixed), a name with tag (":latest" assumed), a
// short name through the search registries, or a digest reference. name
// is the stored name that matched, for untagging.
func (s *Service) lookup(ref string) (img *storage.Image, how match, name string, err error) {
	id := strings.TrimPrefix(ref, "sha256:")
	if hexID.MatchString(id) {
		if img, err := s.store.Image(id); err == nil && strings.HasPrefix(img.ID, id) {
			return img, matchID, "", nil
		}
		// "sha256:..." can only be an id; bare hex may also be a
		// short name ("cafe"), so fall through to names.
		if ref != id {
			return nil, 0, "", errdefs.NotFound("image %q not found", ref)
		}
	}
	cands, err := s.candidates(ref)
	if err != nil {
		return nil, 0, "", err
	}
	for _, c := range cands {
		if dig, ok := c.(reference.Digested); ok {
			imgs, err := s.store.ImagesByDigest(dig.Digest())
			if err != nil && !errors.Is(err, storage.ErrImageUnknown) {
				return nil, 0, "", fmt.Errorf("look up %s: %w", c, err)
			}
			for _, img := range imgs {
				for _, n := range img.Names {
					if repoOf(n) == c.Name() {
						return img, matchDigest, c.String(), nil
					}
				}
			}
			continue
		}
		img, err := s.store.Image(c.String())
		if err == nil {
			return img, matchTag, c.String(), nil
		}
		if !errors.Is(err, storage.ErrImageUnknown) {
			return nil, 0, "", fmt.Errorf("look up %s: %w", c, err)
		}
	}
	return nil, 0, "", errdefs.NotFound("image %q not found", ref)
}

// repoOf strips the tag or digest from a stored name.
func repoOf(name string) string {
	ref, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return name
	}
	return ref.Name()
}
