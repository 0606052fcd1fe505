// Package version holds floe's version, set at build time with
// -ldflags "-X github.com/floe-cri/floe/internal/version.Version=...".
package version

// Version of floe.
var Version = "0.1.0-dev"

// CRIAPIVersion is the CRI API version floe serves.
const CRIAPIVersion = "v1"

// Name is the runtime name reported to the kubelet.
const Name = "floe"
