// Package podannotations reads the CRI-O pod annotations floe honours when
// the pod's runtime handler allows them ([runtimes.NAME]
// allowed_annotations): a user namespace chosen by the runtime
// (io.kubernetes.cri-o.userns-mode), the size of the pod's /dev/shm
// (io.kubernetes.cri-o.ShmSize) and host devices for every container
// (io.kubernetes.cri-o.Devices). Annotations a handler does not allow are
// dropped before anything reads them, so a pod cannot grant itself what
// the node's operator did not.
package podannotations

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// The annotations floe understands.
const (
	UsernsMode = "io.kubernetes.cri-o.userns-mode"
	ShmSize    = "io.kubernetes.cri-o.ShmSize"
	Devices    = "io.kubernetes.cri-o.Devices"
)

// Known lists them, for configuration checks.
var Known = []string{UsernsMode, ShmSize, Devices}

// IsKnown reports whether name is an annotation floe understands.
func IsKnown(name string) bool {
	for _, k := range Known {
		if k == name {
			return true
		}
	}
	return false
}

// Filter returns the known annotations of a pod that allowed permits, and
// the names of known ones it does not (to be logged). Other annotations
// are the kubelet's and users' business; floe reads none of them here.
func Filter(annotations map[string]string, allowed []string) (kept map[string]string, ignored []string) {
	kept = map[string]string{}
	for _, k := range Known {
		v, ok := annotations[k]
		if !ok {
			continue
		}
		if isAllowed(k, allowed) {
			kept[k] = v
		} else {
			ignored = append(ignored, k)
		}
	}
	return kept, ignored
}

// isAllowed matches CRI-O's rule: an allowed entry permits the annotation
// of that name and those it is a prefix of.
func isAllowed(name string, allowed []string) bool {
	for _, a := range allowed {
		if a != "" && strings.HasPrefix(name, a) {
			return true
		}
	}
	return false
}

// DefaultUsernsSize is the number of ids an "auto" user namespace gets,
// as the kubelet gives each pod.
const DefaultUsernsSize = 65536

// ParseUsernsMode reads "auto" or "auto:size=N" and returns the number of
// ids. Modes that need a user of the host (keep-id, nomap) or a given
// mapping (host, private with uidmapping=) make no sense for a pod of a
// rootful runtime and are refused.
func ParseUsernsMode(v string) (uint32, error) {
	mode, opts, _ := strings.Cut(v, ":")
	if mode != "auto" {
		return 0, fmt.Errorf("%q: only \"auto\" and \"auto:size=N\" are supported", v)
	}
	size := uint64(DefaultUsernsSize)
	if opts == "" {
		return uint32(size), nil
	}
	for _, o := range strings.Split(opts, ";") {
		k, val, _ := strings.Cut(o, "=")
		if k != "size" {
			return 0, fmt.Errorf("%q: option %q is not supported (only size=N)", v, k)
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("%q: size must be a positive number of ids", v)
		}
		size = n
	}
	return uint32(size), nil
}

// ParseShmSize reads a quantity such as "128Mi".
func ParseShmSize(v string) (int64, error) {
	q, err := resource.ParseQuantity(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: %w", v, err)
	}
	n, ok := q.AsInt64()
	if !ok || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive size in bytes", v)
	}
	return n, nil
}

// Device is one entry of the Devices annotation.
type Device struct {
	HostPath, ContainerPath, Permissions string
}

// ParseDevices reads "HOST[:CONTAINER[:PERMISSIONS]]" entries separated
// by commas, as CRI-O and podman's --device do.
func ParseDevices(v string) ([]Device, error) {
	var out []Device
	for _, entry := range strings.Split(v, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.Split(entry, ":")
		if len(parts) > 3 {
			return nil, fmt.Errorf("%q: want HOST[:CONTAINER[:PERMISSIONS]]", entry)
		}
		d := Device{HostPath: parts[0], ContainerPath: parts[0], Permissions: "rwm"}
		if len(parts) > 1 {
			d.ContainerPath = parts[1]
		}
		if len(parts) > 2 {
			d.Permissions = parts[2]
		}
		if !filepath.IsAbs(d.HostPath) || !filepath.IsAbs(d.ContainerPath) {
			return nil, fmt.Errorf("%q: device paths must be absolute", entry)
		}
		if d.Permissions == "" || strings.Trim(d.Permissions, "rwm") != "" {
			return nil, fmt.Errorf("%q: permissions must be letters of \"rwm\"", entry)
		}
		out = append(out, d)
	}
	return out, nil
}
