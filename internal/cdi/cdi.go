// Package cdi resolves CDI (Container Device Interface) devices, the
// fully qualified names ("vendor.com/class=name") device plugins and DRA
// drivers hand to containers through ContainerConfig.CDIDevices and the
// cdi.k8s.io/* annotations, into edits of a container's OCI spec, using
// the spec files in the configured directories.
package cdi

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"

	"github.com/floe-cri/floe/internal/errdefs"
)

// Registry is the set of devices the spec directories describe. It is
// re-read whenever devices are asked for, rather than watched: a watch
// needs a goroutine per daemon for a feature most nodes never use, and
// a device plugin writes its spec file before the kubelet asks for it.
type Registry struct {
	dirs  []string
	cache *cdi.Cache
}

// New returns a registry over dirs (lowest priority first).
func New(dirs []string) (*Registry, error) {
	cache, err := cdi.NewCache(cdi.WithSpecDirs(dirs...), cdi.WithAutoRefresh(false))
	if err != nil {
		return nil, fmt.Errorf("open CDI registry: %w", err)
	}
	return &Registry{dirs: slices.Clone(dirs), cache: cache}, nil
}

// SpecDirs are the directories the registry reads.
func (r *Registry) SpecDirs() []string { return slices.Clone(r.dirs) }

// Status is what status reports show of the registry.
type Status struct {
	SpecDirs []string `json:"specDirs"`
	Devices  []string `json:"devices"`
	// Errors are spec files that could not be used, with why.
	Errors []string `json:"errors,omitempty"`
}

// Status re-reads the spec directories and lists the devices known.
func (r *Registry) Status() Status {
	err := r.cache.Refresh()
	st := Status{SpecDirs: r.SpecDirs(), Devices: r.cache.ListDevices()}
	if err != nil {
		st.Errors = append(st.Errors, err.Error())
	}
	sort.Strings(st.Devices)
	return st
}

// Requested is every CDI device a container asks for: the CDIDevices of
// its config (field names them in errors) then those of the cdi.k8s.io/*
// annotations, each once. A malformed name is InvalidArgument.
func Requested(field string, names []string, annotations map[string]string) ([]string, error) {
	var out []string
	for i, n := range names {
		if _, _, _, err := parser.ParseQualifiedName(n); err != nil {
			return nil, errdefs.InvalidArgument(fmt.Sprintf("%s[%d].name", field, i), "%q is not a qualified CDI device name (vendor.com/class=name): %v", n, err)
		}
		out = append(out, n)
	}
	_, fromAnnotations, err := cdi.ParseAnnotations(annotations)
	if err != nil {
		return nil, errdefs.InvalidArgument("config.annotations", "CDI annotation: %v", err)
	}
	// Map order: sorted, so the same request always makes the same spec
	// (retries are matched by the spec's hash).
	sort.Strings(fromAnnotations)
	out = append(out, fromAnnotations...)
	seen := map[string]bool{}
	return slices.DeleteFunc(out, func(n string) bool {
		dup := seen[n]
		seen[n] = true
		return dup
	}), nil
}

// Check makes sure every device is known, so an unknown one is refused
// (InvalidArgument naming it) before anything is made for the container.
func (r *Registry) Check(devices []string) error {
	if len(devices) == 0 {
		return nil
	}
	// Errors of unrelated spec files must not fail this container; a
	// device whose own spec is broken is simply not found.
	_ = r.cache.Refresh()
	var unknown []string
	for _, d := range devices {
		if r.cache.GetDevice(d) == nil {
			unknown = append(unknown, d)
		}
	}
	if len(unknown) > 0 {
		return errdefs.InvalidArgument("config.CDI_devices", "unknown CDI device(s) %s: no spec in %s describes them", strings.Join(unknown, ", "), strings.Join(r.dirs, ", "))
	}
	return nil
}

// Inject applies the devices' edits (device nodes, env, mounts, hooks) to s.
func (r *Registry) Inject(s *specs.Spec, devices []string) error {
	if len(devices) == 0 {
		return nil
	}
	unresolved, err := r.cache.InjectDevices(s, devices...)
	if len(unresolved) > 0 {
		return errdefs.InvalidArgument("config.CDI_devices", "unknown CDI device(s) %s", strings.Join(unresolved, ", "))
	}
	if err != nil {
		return fmt.Errorf("inject CDI devices %s: %w", strings.Join(devices, ", "), err)
	}
	return nil
}
