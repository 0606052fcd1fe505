package integration

import (
	"context"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/ocispec"
	"github.com/floe-cri/floe/test/harness"
)

// procMount: Unmasked as the kubelet sends it (a pod with hostUsers:
// false, a security context with empty masked and read-only lists) gets
// a /proc with nothing masked or made read-only, which SIG Node's
// "ProcMount will unmask proc mounts if requested" checks with
// `mount | grep /proc`: one line, no "(ro". procMount: Default (the
// kubelet's lists sent explicitly) and a request without a security
// context keep them masked in the same pod.
func TestProcMountUnmaskedInUserNamespacePod(t *testing.T) {
	harness.CheckLeaks(t)
	const host = usernsHostID + 2*65536
	e := newContainerEnvWith(t, containerEnvOptions{Pod: func(p *runtimeapi.PodSandboxConfig) {
		p.Linux.SecurityContext.NamespaceOptions.UsernsOptions = usernsOptions(host)
	}})
	t.Cleanup(func() {
		e.d.Runtime.StopPodSandbox(context.Background(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.podID})
		e.d.Runtime.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.podID})
	})
	// The e2e spec's command, and the mounts under /proc with their
	// per-mount options (mountinfo fields 5 and 6).
	const probe = "mount | grep /proc; echo ==; awk '$5 ~ \"^/proc\" {print $5, $6}' /proc/self/mountinfo"
	withUserns := func(name string, masked, readonly []string) *runtimeapi.ContainerConfig {
		cfg := e.config(name, "sh", "-c", probe)
		e.sc(cfg).RunAsUser = i64(0)
		e.sc(cfg).NamespaceOptions = &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER, UsernsOptions: usernsOptions(host)}
		e.sc(cfg).MaskedPaths, e.sc(cfg).ReadonlyPaths = masked, readonly
		return cfg
	}

	_, out := e.runToExit(t, withUserns("unmasked", []string{}, []string{}))
	mountLines, procMounts, _ := strings.Cut(out, "==")
	if lines := strings.Split(strings.TrimSpace(mountLines), "\n"); len(lines) != 1 || strings.Contains(mountLines, "(ro") {
		t.Errorf("Unmasked: `mount | grep /proc` gave %d lines (want 1, none \"(ro\"):\n%s", len(lines), mountLines)
	}
	if got := strings.Fields(procMounts); len(got) != 2 || got[0] != "/proc" || !strings.HasPrefix(got[1], "rw") {
		t.Errorf("Unmasked: mounts under /proc %q, want only a read-write /proc", procMounts)
	}

	checkMasked := func(what string, cfg *runtimeapi.ContainerConfig) {
		t.Helper()
		_, out := e.runToExit(t, cfg)
		_, procMounts, _ := strings.Cut(out, "==")
		// Masked files missing on this kernel (kcore, sysrq-trigger)
		// are skipped by runc; these exist on every kernel floe runs on.
		for _, want := range []string{"/proc/keys ", "/proc/timer_list ", "/proc/acpi ro", "/proc/sys ro"} {
			if !strings.Contains(procMounts, want) {
				t.Errorf("%s: mounts under /proc lack %q:\n%s", what, want, procMounts)
			}
		}
	}
	checkMasked("Default", withUserns("default", ocispec.DefaultMaskedPaths, ocispec.DefaultReadonlyPaths))
	noSC := e.config("nosc", "sh", "-c", probe)
	noSC.Linux.SecurityContext = nil
	checkMasked("no security context", noSC)
}
