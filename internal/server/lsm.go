package server

import (
	"fmt"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/lsm"
	"github.com/floe-cri/floe/internal/ocispec"
)

const (
	apparmorField    = "config.linux.security_context.apparmor"
	apparmorOldField = "config.linux.security_context.apparmor_profile"
	selinuxField     = "config.linux.security_context.selinux_options"
)

// containerLSM decides the AppArmor profile and SELinux labels of a
// container against what the host enforces (see apparmorProfile and
// selinuxLabels). It runs before anything is made; the only state it
// touches is go-selinux's in-process record of MCS levels in use.
func containerLSM(sc *runtimeapi.LinuxContainerSecurityContext, pod *runtimeapi.LinuxSandboxSecurityContext, host lsm.Host, defaultProfile string) (ocispec.LSM, error) {
	var out ocispec.LSM
	profile, field, err := apparmorRequest(sc)
	if err != nil {
		return out, err
	}
	if out.AppArmorProfile, err = apparmorProfile(profile, field, sc.GetPrivileged(), host, defaultProfile); err != nil {
		return out, err
	}
	// The kubelet merges the pod's options into each container's; a
	// client that only set the pod's still gets them.
	opts, field := sc.GetSelinuxOptions(), selinuxField
	if selinuxOptions(opts).Empty() {
		opts, field = pod.GetSelinuxOptions(), "config.linux.security_context.selinux_options (from the pod's)"
	}
	out.SELinuxLabel, out.MountLabel, err = selinuxLabels(selinuxOptions(opts), field, host)
	return out, err
}

// apparmorRequest is the profile asked for: the apparmor field, or the
// deprecated apparmor_profile string when that is unset, as containerd
// and CRI-O read them. It also returns the field to name in errors.
func apparmorRequest(sc *runtimeapi.LinuxContainerSecurityContext) (*runtimeapi.SecurityProfile, string, error) {
	if p := sc.GetApparmor(); p != nil {
		return p, apparmorField, nil
	}
	old := sc.GetApparmorProfile() //nolint:staticcheck // still sent by kubelets and read by every runtime
	switch {
	case old == "":
		return nil, apparmorOldField, nil
	case old == "runtime/default":
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, apparmorOldField, nil
	case old == "unconfined":
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, apparmorOldField, nil
	case strings.HasPrefix(old, "localhost/"):
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: strings.TrimPrefix(old, "localhost/")}, apparmorOldField, nil
	}
	return nil, "", invalid(apparmorOldField, "%q is not runtime/default, unconfined or localhost/<profile>", old)
}

// apparmorProfile maps the request onto a profile name for runc.
// Unconfined and nothing asked run without a profile. RuntimeDefault is
// the configured apparmor.default_profile where the host has AppArmor
// (floe ships no profile of its own, so with none configured it is
// refused rather than run unconfined), nothing for a privileged container
// (as in containerd and CRI-O), and nothing where the host has no
// AppArmor: there is no confinement to apply. A Localhost profile must be
// loaded on a host with AppArmor.
func apparmorProfile(p *runtimeapi.SecurityProfile, field string, privileged bool, host lsm.Host, defaultProfile string) (string, error) {
	if p == nil {
		return "", nil
	}
	refField := field
	if field == apparmorField {
		refField += ".localhost_ref"
	}
	switch p.ProfileType {
	case runtimeapi.SecurityProfile_Unconfined:
		return "", nil
	case runtimeapi.SecurityProfile_RuntimeDefault:
		if !host.AppArmor || privileged {
			return "", nil
		}
		if defaultProfile == "" {
			return "", errdefs.FailedPrecondition("%s: RuntimeDefault asks for the runtime's default AppArmor profile, and floe has none: load one on this node and name it in apparmor.default_profile", field)
		}
		return defaultProfile, loadedProfile(host, field, defaultProfile, "apparmor.default_profile")
	case runtimeapi.SecurityProfile_Localhost:
		name := p.LocalhostRef
		if name == "" || strings.ContainsAny(name, "\x00\n") {
			return "", invalid(refField, "%q is not an AppArmor profile name", name)
		}
		if !host.AppArmor {
			return "", errdefs.FailedPrecondition("%s: AppArmor profile %q asked for, but this node does not enforce AppArmor (%s)", refField, name, host.AppArmorStatus)
		}
		return name, loadedProfile(host, refField, name, "")
	}
	return "", invalid(field+".profile_type", "unknown profile type %d", p.ProfileType)
}

func loadedProfile(host lsm.Host, field, name, setting string) error {
	ok, err := host.ProfileLoaded(name)
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	if !ok {
		where := ""
		if setting != "" {
			where = " (named by " + setting + ")"
		}
		return errdefs.FailedPrecondition("%s: AppArmor profile %q%s is not loaded on this node", field, name, where)
	}
	return nil
}

func selinuxOptions(o *runtimeapi.SELinuxOption) lsm.SELinuxOptions {
	return lsm.SELinuxOptions{User: o.GetUser(), Role: o.GetRole(), Type: o.GetType(), Level: o.GetLevel()}
}

// selinuxLabels turns options into the process and mount labels where the
// host has SELinux. Elsewhere the options are checked and then have no
// label to become: SELinux labels are not a request a node without SELinux
// can refuse, because Kubernetes' own conformance suite sends them to every
// node (the EmptyDir specs' pods have level "s0", ContainerLogPath's
// container type "container_logreader_t") and expects them to run, as they
// do on containerd and CRI-O. The caller logs what was not applied
// (selinuxNotApplied); AppArmor differs: the kubelet itself refuses an
// AppArmor pod on a node without AppArmor.
func selinuxLabels(o lsm.SELinuxOptions, field string, host lsm.Host) (string, string, error) {
	if o.Empty() {
		return "", "", nil
	}
	if err := checkSELinuxOptions(o, field); err != nil {
		return "", "", err
	}
	if !host.SELinux {
		return "", "", nil
	}
	p, m, err := host.Labels(o)
	if err != nil {
		return "", "", invalid(field, "%v", err)
	}
	return p, m, nil
}

// checkSELinuxOptions refuses parts that would change the label's shape:
// user, role and type are single words, and no part holds a NUL or
// whitespace.
func checkSELinuxOptions(o lsm.SELinuxOptions, field string) error {
	for _, p := range []struct{ name, v string }{{"user", o.User}, {"role", o.Role}, {"type", o.Type}, {"level", o.Level}} {
		if strings.ContainsAny(p.v, "\x00 \t\n") || (p.name != "level" && strings.Contains(p.v, ":")) {
			return invalid(field+"."+p.name, "%q is not a valid SELinux %s", p.v, p.name)
		}
	}
	return nil
}

// checkPodSELinux refuses a pod whose sandbox's SELinux options are
// malformed, before the pod is made. Well-formed ones run on any node (see
// selinuxLabels).
func checkPodSELinux(sc *runtimeapi.LinuxSandboxSecurityContext) error {
	o := selinuxOptions(sc.GetSelinuxOptions())
	if o.Empty() {
		return nil
	}
	return checkSELinuxOptions(o, selinuxField)
}

// selinuxNotApplied is the reason the SELinux options of a container are
// not applied on this node, or "" when they are (or none were asked for):
// what the server logs, so that accepting them is never silent.
func selinuxNotApplied(sc *runtimeapi.LinuxContainerSecurityContext, pod *runtimeapi.LinuxSandboxSecurityContext, host lsm.Host) string {
	o := selinuxOptions(sc.GetSelinuxOptions())
	if o.Empty() {
		o = selinuxOptions(pod.GetSelinuxOptions())
	}
	if o.Empty() || host.SELinux {
		return ""
	}
	return fmt.Sprintf("SELinux options %q not applied: SELinux is %s on this node", o.String(), host.SELinuxStatus)
}
