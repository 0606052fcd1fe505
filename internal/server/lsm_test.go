package server

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/lsm"
	"github.com/floe-cri/floe/internal/ocispec"
)

// noLSM is a host like this one; withLSM pretends it has both modules,
// with "loaded-profile" and "floe-default" loaded.
var (
	noLSM   = lsm.Host{AppArmorStatus: "not enabled (no AppArmor module)", SELinuxStatus: "disabled"}
	withLSM = lsm.Host{
		AppArmor: true, AppArmorStatus: "enabled", SELinux: true, SELinuxStatus: "enforcing",
		ProfileLoaded: func(name string) (bool, error) { return name == "loaded-profile" || name == "floe-default", nil },
		Labels: func(o lsm.SELinuxOptions) (string, string, error) {
			if o.Type == "bad_t" {
				return "", "", errors.New("invalid context")
			}
			return o.String(), o.User + ":object_r:container_file_t:" + o.Level, nil
		},
	}
)

func kindOf(err error) string {
	if err == nil {
		return "ok"
	}
	return status.Code(toStatus(err)).String()
}

func TestContainerLSM(t *testing.T) {
	aa := func(t runtimeapi.SecurityProfile_ProfileType, ref string) *runtimeapi.LinuxContainerSecurityContext {
		return &runtimeapi.LinuxContainerSecurityContext{Apparmor: &runtimeapi.SecurityProfile{ProfileType: t, LocalhostRef: ref}}
	}
	old := func(s string) *runtimeapi.LinuxContainerSecurityContext {
		return &runtimeapi.LinuxContainerSecurityContext{ApparmorProfile: s}
	}
	se := func(u, r, ty, l string) *runtimeapi.LinuxContainerSecurityContext {
		return &runtimeapi.LinuxContainerSecurityContext{SelinuxOptions: &runtimeapi.SELinuxOption{User: u, Role: r, Type: ty, Level: l}}
	}
	priv := aa(runtimeapi.SecurityProfile_RuntimeDefault, "")
	priv.Privileged = true
	full := "system_u:system_r:container_t:s0:c1,c2"
	for _, tc := range []struct {
		name     string
		sc       *runtimeapi.LinuxContainerSecurityContext
		pod      *runtimeapi.LinuxSandboxSecurityContext
		host     lsm.Host
		defProf  string
		want     ocispec.LSM
		code     string
		errField string
	}{
		{name: "nothing asked, no LSM", sc: nil, host: noLSM, code: "OK"},
		{name: "nothing asked, LSMs", sc: &runtimeapi.LinuxContainerSecurityContext{}, host: withLSM, code: "OK"},
		{name: "RuntimeDefault without AppArmor runs", sc: aa(runtimeapi.SecurityProfile_RuntimeDefault, ""), host: noLSM, code: "OK"},
		{name: "runtime/default string without AppArmor runs", sc: old("runtime/default"), host: noLSM, code: "OK"},
		{name: "Unconfined without AppArmor", sc: aa(runtimeapi.SecurityProfile_Unconfined, ""), host: noLSM, code: "OK"},
		{name: "Localhost without AppArmor refused", sc: aa(runtimeapi.SecurityProfile_Localhost, "my-prof"), host: noLSM, code: "FailedPrecondition", errField: "config.linux.security_context.apparmor.localhost_ref"},
		{name: "localhost/ string without AppArmor refused", sc: old("localhost/my-prof"), host: noLSM, code: "FailedPrecondition", errField: "config.linux.security_context.apparmor_profile"},
		{name: "bad apparmor_profile string", sc: old("enforce-everything"), host: noLSM, code: "InvalidArgument", errField: "apparmor_profile"},
		{name: "Localhost loaded", sc: aa(runtimeapi.SecurityProfile_Localhost, "loaded-profile"), host: withLSM, want: ocispec.LSM{AppArmorProfile: "loaded-profile"}, code: "OK"},
		{name: "Localhost string loaded", sc: old("localhost/loaded-profile"), host: withLSM, want: ocispec.LSM{AppArmorProfile: "loaded-profile"}, code: "OK"},
		{name: "Localhost not loaded", sc: aa(runtimeapi.SecurityProfile_Localhost, "missing"), host: withLSM, code: "FailedPrecondition", errField: "localhost_ref"},
		{name: "Localhost empty ref", sc: aa(runtimeapi.SecurityProfile_Localhost, ""), host: withLSM, code: "InvalidArgument", errField: "localhost_ref"},
		{name: "RuntimeDefault, default configured", sc: aa(runtimeapi.SecurityProfile_RuntimeDefault, ""), host: withLSM, defProf: "floe-default", want: ocispec.LSM{AppArmorProfile: "floe-default"}, code: "OK"},
		{name: "RuntimeDefault, none configured", sc: aa(runtimeapi.SecurityProfile_RuntimeDefault, ""), host: withLSM, code: "FailedPrecondition", errField: "apparmor.default_profile"},
		{name: "RuntimeDefault, configured not loaded", sc: aa(runtimeapi.SecurityProfile_RuntimeDefault, ""), host: withLSM, defProf: "gone", code: "FailedPrecondition", errField: `"gone"`},
		{name: "RuntimeDefault privileged runs unconfined", sc: priv, host: withLSM, code: "OK"},
		{name: "Unconfined with AppArmor", sc: aa(runtimeapi.SecurityProfile_Unconfined, ""), host: withLSM, code: "OK"},
		// The conformance suite sends these to every node: they run, with no label.
		{name: "SELinux type without SELinux runs unlabelled", sc: se("", "", "container_logreader_t", ""), host: noLSM, code: "OK"},
		{name: "pod SELinux level without SELinux runs unlabelled", pod: &runtimeapi.LinuxSandboxSecurityContext{SelinuxOptions: &runtimeapi.SELinuxOption{Level: "s0"}}, host: noLSM, code: "OK"},
		{name: "malformed SELinux type without SELinux refused", sc: se("", "", "a:b", ""), host: noLSM, code: "InvalidArgument", errField: "selinux_options.type"},
		{name: "SELinux full label", sc: se("system_u", "system_r", "container_t", "s0:c1,c2"), host: withLSM, want: ocispec.LSM{SELinuxLabel: full, MountLabel: "system_u:object_r:container_file_t:s0:c1,c2"}, code: "OK"},
		{name: "SELinux from the pod", pod: &runtimeapi.LinuxSandboxSecurityContext{SelinuxOptions: &runtimeapi.SELinuxOption{User: "system_u", Role: "system_r", Type: "container_t", Level: "s0:c1,c2"}}, host: withLSM, want: ocispec.LSM{SELinuxLabel: full, MountLabel: "system_u:object_r:container_file_t:s0:c1,c2"}, code: "OK"},
		{name: "SELinux type with a colon", sc: se("", "", "a:b", ""), host: withLSM, code: "InvalidArgument", errField: "selinux_options.type"},
		{name: "SELinux policy refuses", sc: se("", "", "bad_t", ""), host: withLSM, code: "InvalidArgument", errField: "selinux_options"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := containerLSM(tc.sc, tc.pod, tc.host, tc.defProf)
			if c := kindOf(err); c != tc.code && !(tc.code == "OK" && err == nil) {
				t.Fatalf("code %s (%v), want %s", c, err, tc.code)
			}
			if err != nil && !strings.Contains(err.Error(), tc.errField) {
				t.Errorf("error %q does not name %q", err, tc.errField)
			}
			if err == nil && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCheckPodSELinux(t *testing.T) {
	pod := &runtimeapi.LinuxSandboxSecurityContext{SelinuxOptions: &runtimeapi.SELinuxOption{Type: "container_t", Level: "s0"}}
	if err := checkPodSELinux(pod); err != nil {
		t.Errorf("well-formed options: %v", err)
	}
	if err := checkPodSELinux(&runtimeapi.LinuxSandboxSecurityContext{SelinuxOptions: &runtimeapi.SELinuxOption{}}); err != nil {
		t.Errorf("empty options: %v", err)
	}
	if status.Code(toStatus(checkPodSELinux(&runtimeapi.LinuxSandboxSecurityContext{SelinuxOptions: &runtimeapi.SELinuxOption{User: "a b"}}))) != codes.InvalidArgument {
		t.Error("bad user accepted")
	}
}

func TestSELinuxNotAppliedIsSaid(t *testing.T) {
	sc := &runtimeapi.LinuxContainerSecurityContext{SelinuxOptions: &runtimeapi.SELinuxOption{Type: "container_logreader_t"}}
	if why := selinuxNotApplied(sc, nil, noLSM); !strings.Contains(why, "container_logreader_t") || !strings.Contains(why, "disabled") {
		t.Errorf("container options on a node without SELinux: %q", why)
	}
	pod := &runtimeapi.LinuxSandboxSecurityContext{SelinuxOptions: &runtimeapi.SELinuxOption{Level: "s0"}}
	if why := selinuxNotApplied(nil, pod, noLSM); !strings.Contains(why, "s0") {
		t.Errorf("pod options on a node without SELinux: %q", why)
	}
	if why := selinuxNotApplied(sc, pod, withLSM); why != "" {
		t.Errorf("SELinux node: %q", why)
	}
	if why := selinuxNotApplied(nil, nil, noLSM); why != "" {
		t.Errorf("nothing asked: %q", why)
	}
}
