package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/cgroups"
	"github.com/floe-cri/floe/internal/inspect"
	"github.com/floe-cri/floe/internal/server"
	"github.com/floe-cri/floe/test/harness"
	"github.com/floe-cri/floe/test/needs"
)

// crunHybridError is what crun 1.8 says on a cgroup v1 hybrid host.
const crunHybridError = "hybrid mode not supported"

// requireCrunOnHybrid skips unless this host is the case the test is
// about: crun installed and a hybrid cgroup layout it refuses.
func requireCrunOnHybrid(t *testing.T) {
	t.Helper()
	needs.Binary(t, "/usr/bin/crun")
	cg, err := cgroups.Detect(cgroups.HostPaths)
	if err != nil {
		t.Fatal(err)
	}
	if cg.Mode != cgroups.ModeHybrid {
		t.Skipf("cgroup mode %s: crun works here", cg.Mode)
	}
}

func TestHandlerProbeReportsCrunUnusableWithItsError(t *testing.T) {
	requireCrunOnHybrid(t)
	harness.CheckLeaks(t)
	d := harness.StartDaemon(t, harness.Options{ConfigTOML: `
[runtimes.crun]
runtime_path = "/usr/bin/crun"
runtime_type = "oci"
monitor_path = "/usr/bin/conmon"
`})
	ctx := harness.Ctx(t)

	// Startup checks: crun's own words, runc's trial time.
	log := d.Log()
	for _, want := range []string{"runtime crun", "UNUSABLE", crunHybridError, "trial container made and deleted in"} {
		if !strings.Contains(log, want) {
			t.Errorf("startup checks lack %q:\n%s", want, log)
		}
	}

	st, err := d.Runtime.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	conds := map[string]*runtimeapi.RuntimeCondition{}
	for _, c := range st.Status.Conditions {
		conds[c.Type] = c
	}
	if c := conds[server.HandlerConditionPrefix+"crun"]; c == nil || c.Status || !strings.Contains(c.Message, crunHybridError) {
		t.Errorf("crun condition = %v", c)
	}
	if c := conds[server.HandlerConditionPrefix+"runc"]; c == nil || !c.Status {
		t.Errorf("runc condition = %v", c)
	}
	if c := conds[runtimeapi.RuntimeReady]; c == nil || !c.Status {
		t.Errorf("RuntimeReady = %v: the default handler runc works", c)
	}
	for _, h := range st.RuntimeHandlers {
		if h.Name == "crun" {
			t.Errorf("unusable crun listed in RuntimeHandlers: %v", st.RuntimeHandlers)
		}
	}

	// A pod asking for it is refused before anything is made.
	cfg := podConfig("wants-crun")
	_, err = d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: "crun"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), `"crun"`) || !strings.Contains(err.Error(), crunHybridError) {
		t.Errorf("RunPodSandbox with handler crun: %v", err)
	}
	if l, err := d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err != nil || len(l.Items) != 0 {
		t.Errorf("pods after the refusal: %v %v", l, err)
	}
	// runc still serves pods.
	if _, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podConfig("runc-pod"), RuntimeHandler: "runc"}); err != nil {
		t.Errorf("RunPodSandbox with runc: %v", err)
	}

	in, err := inspect.NewClient(d.InspectSocket).Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	crun, runc := in.Runtimes["crun"], in.Runtimes["runc"]
	if !strings.Contains(crun.Problem, crunHybridError) || crun.Probe == nil || crun.Probe.Usable {
		t.Errorf("/info crun = %+v", crun)
	}
	if runc.Problem != "" || runc.Probe == nil || !runc.Probe.Usable {
		t.Errorf("/info runc = %+v", runc)
	}
	if runc.Probe != nil && crun.Probe != nil {
		t.Logf("probe durations: runc %v, crun %v", runc.Probe.Duration, crun.Probe.Duration)
		for name, dur := range map[string]time.Duration{"runc": runc.Probe.Duration, "crun": crun.Probe.Duration} {
			// 100 ms is the budget; twice that on a loaded shared
			// test machine before this counts as a regression.
			if dur > 200*time.Millisecond {
				t.Errorf("%s probe took %v", name, dur)
			}
		}
	}
	out, err := floeCLI(t, d, "status")
	if err != nil || !strings.Contains(out, "Runtime crun") || !strings.Contains(out, "UNUSABLE") || !strings.Contains(out, crunHybridError) {
		t.Errorf("floe status: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(d.RunDir, "probe")); !os.IsNotExist(err) {
		t.Errorf("probe dir left in the run dir: %v", err)
	}

	// SIGHUP probes again, and leaves nothing either.
	before := strings.Count(d.Log(), "runtime handler probed")
	d.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(d.Log(), "runtime handler probed") < before+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := strings.Count(d.Log(), "runtime handler probed"); n < before+2 {
		t.Errorf("SIGHUP did not probe both handlers again (%d probe lines, %d before)", n, before)
	}
}
