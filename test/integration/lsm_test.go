package integration

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/inspect"
	"github.com/floe-cri/floe/test/harness"
)

// On this host, which enforces neither AppArmor nor SELinux: what the
// kubelet sends by default (RuntimeDefault, Unconfined, nothing) runs;
// an AppArmor Localhost profile or an SELinux label, for a container or
// a pod, is FailedPrecondition naming the field and leaves nothing
// behind; /info says which LSMs the node enforces.
func TestLSMRequestsOnHostWithoutLSMs(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	ctx := harness.Ctx(t)
	t.Cleanup(func() {
		e.d.Runtime.StopPodSandbox(context.Background(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.podID})
		e.d.Runtime.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.podID})
	})
	in, err := inspect.NewClient(e.d.InspectSocket).Info(ctx)
	if err != nil || in.LSM == nil || in.LSM.AppArmor || in.LSM.SELinux || !strings.HasPrefix(in.LSM.String(), "none (AppArmor: not enabled") {
		t.Fatalf("/info LSM: %+v %v; this test needs a host without AppArmor and SELinux", in.LSM, err)
	}
	if out, err := floeCLI(t, e.d, "status"); err != nil || !strings.Contains(out, "LSMs") || !strings.Contains(out, "none (AppArmor: not enabled") {
		t.Errorf("floe status does not say which LSMs the node enforces: %v\n%s", err, out)
	}

	runs := map[string]func(*runtimeapi.LinuxContainerSecurityContext){
		"default": func(sc *runtimeapi.LinuxContainerSecurityContext) {
			sc.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
			sc.ApparmorProfile = "runtime/default"
		},
		"unconfined": func(sc *runtimeapi.LinuxContainerSecurityContext) {
			sc.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
		},
	}
	for name, set := range runs {
		cfg := e.config(name, "true")
		set(e.sc(cfg))
		if st, out := e.runToExit(t, cfg); st.ExitCode != 0 {
			t.Errorf("%s: exit %d %q", name, st.ExitCode, out)
		}
	}

	refused := []struct {
		name, field string
		set         func(*runtimeapi.LinuxContainerSecurityContext)
	}{
		{"apparmor-localhost", "config.linux.security_context.apparmor.localhost_ref", func(sc *runtimeapi.LinuxContainerSecurityContext) {
			sc.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "k8s-apparmor-example-deny-write"}
			sc.ApparmorProfile = "localhost/k8s-apparmor-example-deny-write"
		}},
		{"apparmor-string", "config.linux.security_context.apparmor_profile", func(sc *runtimeapi.LinuxContainerSecurityContext) {
			sc.ApparmorProfile = "localhost/k8s-apparmor-example-deny-write"
		}},
		{"selinux-type", "config.linux.security_context.selinux_options", func(sc *runtimeapi.LinuxContainerSecurityContext) {
			sc.SelinuxOptions = &runtimeapi.SELinuxOption{Type: "spc_t"}
		}},
	}
	var before int
	if r, err := e.d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); err == nil {
		before = len(r.Containers)
	}
	for _, tc := range refused {
		cfg := e.config(tc.name, "true")
		tc.set(e.sc(cfg))
		_, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: cfg, SandboxConfig: e.podCfg})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("%s: %v, want FailedPrecondition naming %s", tc.name, err, tc.field)
		}
	}
	if r, err := e.d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); err != nil || len(r.Containers) != before {
		t.Errorf("containers after refused requests: %v %v, want %d", r, err, before)
	}

	pod := podConfig("selinux-pod")
	pod.Linux.SecurityContext.SelinuxOptions = &runtimeapi.SELinuxOption{Level: "s0:c123,c456"}
	if _, err := e.d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod}); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "config.linux.security_context.selinux_options:") {
		t.Errorf("pod with an SELinux level: %v, want FailedPrecondition naming the field", err)
	}
	if list, err := e.d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err != nil || len(list.Items) != 1 {
		t.Errorf("sandboxes after the refused pod: %v %v, want only the test's own", list, err)
	}
}
