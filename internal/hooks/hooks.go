// Package hooks reads OCI hook files (oci-hooks(5), the format CRI-O and
// podman read from /usr/share/containers/oci/hooks.d and
// /etc/containers/oci/hooks.d) and adds the hooks that match a container
// to its runtime spec.
//
// Parsing, validation and the "when" conditions are the containers
// project's own (go.podman.io/common/pkg/hooks), so a hook file means to
// floe what it means to CRI-O. Reading the directories is floe's: that
// package's Manager refuses to start over one bad file, where floe logs
// and skips it as CRI-O's documentation promises, and its Manager folds
// the deprecated prestart stage into createRuntime, where floe keeps the
// stage the file names.
package hooks

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	podhooks "go.podman.io/common/pkg/hooks"
	current "go.podman.io/common/pkg/hooks/1.0.0"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Hook is one valid hook file.
type Hook struct {
	// Name is the file name, which orders hooks and lets a later
	// directory mask an earlier one.
	Name string
	// Path is the file the hook was read from.
	Path string
	hook *current.Hook
}

// Stages are the stages the hook asks for.
func (h Hook) Stages() []string { return h.hook.Stages }

// Set is the hooks read from the hook directories. It is never changed
// once loaded; a reload makes a new one.
type Set struct {
	hooks []Hook
}

// Hooks lists the hooks in the order they are injected.
func (s *Set) Hooks() []Hook {
	if s == nil {
		return nil
	}
	return slices.Clone(s.hooks)
}

// Load reads the *.json files of dirs, lowest priority first. A missing
// directory is skipped quietly (neither default directory exists on most
// nodes); one that cannot be read is skipped with a warning, as is an
// invalid file, which still masks the file of the same name in an earlier
// directory: an administrator's replacement that fails to parse must not
// bring back the hook it was meant to replace.
func Load(dirs []string, log *slog.Logger) *Set {
	if log == nil {
		log = slog.Default()
	}
	byName := map[string]*Hook{}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			log.Debug("hooks directory absent", "dir", dir)
			continue
		}
		if err != nil {
			log.Warn("hooks directory skipped", "dir", dir, "err", err)
			continue
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".json") || e.IsDir() {
				continue
			}
			path := filepath.Join(dir, e.Name())
			h, err := podhooks.Read(path, nil)
			if err != nil {
				log.Warn("invalid OCI hook file skipped", "file", path, "err", err)
				byName[e.Name()] = nil
				continue
			}
			byName[e.Name()] = &Hook{Name: e.Name(), Path: path, hook: h}
		}
	}
	s := &Set{}
	for _, h := range byName {
		if h != nil {
			s.hooks = append(s.hooks, *h)
		}
	}
	// oci-hooks(5): injected in the order of the lower-cased file names.
	slices.SortFunc(s.hooks, func(a, b Hook) int {
		return cmp.Or(cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), cmp.Compare(a.Name, b.Name))
	})
	for _, h := range s.hooks {
		log.Info("OCI hook loaded", "file", h.Path, "stages", h.hook.Stages, "hook", h.hook.Hook.Path)
	}
	return s
}

// Apply adds the hooks whose conditions match spec to spec.Hooks, in the
// stages they name. annotations are the container's; hasBindMounts says
// whether the container asked for bind mounts of host paths. It returns
// the names of the hooks added.
func (s *Set) Apply(spec *specs.Spec, annotations map[string]string, hasBindMounts bool) ([]string, error) {
	if s == nil {
		return nil, nil
	}
	var added []string
	for _, h := range s.hooks {
		ok, err := h.hook.When.Match(spec, annotations, hasBindMounts)
		if err != nil {
			return added, fmt.Errorf("OCI hook %s: %w", h.Path, err)
		}
		if !ok {
			continue
		}
		if spec.Hooks == nil {
			spec.Hooks = &specs.Hooks{}
		}
		for _, stage := range h.hook.Stages {
			if err := addToStage(spec.Hooks, stage, h.hook.Hook); err != nil {
				return added, fmt.Errorf("OCI hook %s: %w", h.Path, err)
			}
		}
		added = append(added, h.Name)
	}
	return added, nil
}

// addToStage appends hook to the named stage. Validation at load already
// refused other stage names.
func addToStage(hooks *specs.Hooks, stage string, hook specs.Hook) error {
	switch stage {
	case "prestart":
		// Deprecated in the runtime spec but still run by runc, crun and
		// runsc, at the point createRuntime runs in runc.
		hooks.Prestart = append(hooks.Prestart, hook) //nolint:staticcheck // the stage the hook file names
	case "createRuntime":
		hooks.CreateRuntime = append(hooks.CreateRuntime, hook)
	case "createContainer":
		hooks.CreateContainer = append(hooks.CreateContainer, hook)
	case "startContainer":
		hooks.StartContainer = append(hooks.StartContainer, hook)
	case "poststart":
		hooks.Poststart = append(hooks.Poststart, hook)
	case "poststop":
		hooks.Poststop = append(hooks.Poststop, hook)
	default:
		return fmt.Errorf("unknown stage %q", stage)
	}
	return nil
}
