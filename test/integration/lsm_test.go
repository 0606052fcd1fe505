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
// an AppArmor Localhost profile is FailedPrecondition naming the field
// and leaves nothing behind; SELinux options run unlabelled (said in the
// log); /info says which LSMs the node enforces.
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

	// SELinux options run unlabelled here, as on containerd and CRI-O: the
	// conformance suite's EmptyDir pods (level "s0") and ContainerLogPath
	// (type "container_logreader_t") send them to every node.
	se := e.config("selinux-type", "true")
	e.sc(se).SelinuxOptions = &runtimeapi.SELinuxOption{Type: "container_logreader_t"}
	if _, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: se, SandboxConfig: e.podCfg}); err != nil {
		t.Errorf("container with an SELinux type on a node without SELinux: %v, want it created", err)
	}
	if !strings.Contains(e.d.Log(), "container_logreader_t") || !strings.Contains(e.d.Log(), "not applied") {
		t.Errorf("the SELinux options not applied are not in the log")
	}
	pod := podConfig("selinux-pod")
	pod.Linux.SecurityContext.SelinuxOptions = &runtimeapi.SELinuxOption{Level: "s0"}
	resp, err := e.d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	if err != nil {
		t.Fatalf("pod with an SELinux level on a node without SELinux: %v", err)
	}
	e.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: resp.PodSandboxId})
	if _, err := e.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
		t.Error(err)
	}
	// Malformed options are still refused before anything is made.
	bad := podConfig("selinux-bad")
	bad.Linux.SecurityContext.SelinuxOptions = &runtimeapi.SELinuxOption{User: "a b"}
	if _, err := e.d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: bad}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("pod with a malformed SELinux user: %v, want InvalidArgument", err)
	}
	if list, err := e.d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err != nil || len(list.Items) != 1 {
		t.Errorf("sandboxes after the refused pod: %v %v, want only the test's own", list, err)
	}
}
