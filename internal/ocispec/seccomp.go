package ocispec

import (
	"fmt"
	"os"

	"github.com/floe-cri/floe/internal/errdefs"
	seccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// applySeccomp sets spec.Linux.Seccomp from the request. It must run after
// the capabilities are set: the default profile allows some syscalls only
// to holders of the matching capability (unshare, mount and others need
// CAP_SYS_ADMIN). Privileged containers run unconfined, as in containerd
// and CRI-O. RuntimeDefault is the node's profile (defaultProfile, read
// from profilePath) when one is configured, else moby's default.
func applySeccomp(spec *specs.Spec, req Seccomp, privileged bool, defaultProfile []byte, profilePath string) error {
	if privileged {
		return nil
	}
	switch req.Kind {
	case "", SeccompUnconfined:
		return nil
	case SeccompRuntimeDefault:
		if defaultProfile != nil {
			prof, err := seccomp.LoadProfile(string(defaultProfile), spec)
			if err != nil {
				return fmt.Errorf("seccomp profile %s (containers.seccomp_profile): %w", profilePath, err)
			}
			spec.Linux.Seccomp = prof
			return nil
		}
		prof, err := seccomp.GetDefaultProfile(spec)
		if err != nil {
			return fmt.Errorf("build the default seccomp profile: %w", err)
		}
		spec.Linux.Seccomp = prof
		return nil
	case SeccompLocalhost:
		if req.LocalhostPath == "" {
			return errdefs.InvalidArgument("security_context.seccomp.localhost_ref", "empty profile path")
		}
		data, err := os.ReadFile(req.LocalhostPath)
		if err != nil {
			return errdefs.InvalidArgument("security_context.seccomp.localhost_ref", "read profile: %v", err)
		}
		prof, err := seccomp.LoadProfile(string(data), spec)
		if err != nil {
			return errdefs.InvalidArgument("security_context.seccomp.localhost_ref", "profile %s: %v", req.LocalhostPath, err)
		}
		spec.Linux.Seccomp = prof
		return nil
	default:
		return errdefs.InvalidArgument("security_context.seccomp.profile_type", "unknown seccomp profile kind %q", req.Kind)
	}
}
