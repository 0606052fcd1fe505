package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/inspect"
	"github.com/floe-cri/floe/test/fixtures"
	"github.com/floe-cri/floe/test/harness"
)

// refusedStart is what the failing runtime says to every `start`.
const refusedStart = "failstart: this runtime refuses to start containers"

// failingRuntime writes a runc wrapper that hands every command to runc
// except `start`, which it refuses; with killFails it also refuses `kill`
// with runsc's words for a container that was created but never started
// (every container of this runtime is in that state), as gVisor's runsc
// does when it is configured as a plain OCI handler and its start failed.
func failingRuntime(t *testing.T, killFails bool) string {
	t.Helper()
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc not installed")
	}
	kill := ""
	if killFails {
		kill = "  kill) echo 'cannot signal container in state created' >&2; exit 1 ;;\n"
	}
	script := "#!/bin/sh\nfor a in \"$@\"; do\n case \"$a\" in\n" +
		"  start) echo '" + refusedStart + "' >&2; exit 1 ;;\n" + kill +
		" esac\ndone\nexec " + runc + " \"$@\"\n"
	path := filepath.Join(t.TempDir(), "failstart")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// stuckPodCase is a handler whose StartContainer fails, and what the
// test checks about it.
type stuckPodCase struct {
	handler string
	config  string // the daemon's drop-in defining the handler
	root    string // the handler's runtime state root
	// startErr is a part of the StartContainer error (none: any error).
	startErr string
}

// TestFailedStartLeavesNoPodStuck runs a pod with a hostPort through a
// handler whose StartContainer always fails, then stops one container with
// StopContainer and the pod (with the other container still "created")
// with StopPodSandbox, and removes it: every call must succeed, and
// nothing of the pod may be left (runtime containers, conmon, netns, veth,
// IP, mounts, cgroups, the portmap DNAT rule). With kill failing too, this
// is the reported gVisor case that left pods nobody could tear down.
func TestFailedStartLeavesNoPodStuck(t *testing.T) {
	for _, tc := range []struct {
		name      string
		killFails bool
	}{{"start fails", false}, {"start and kill of a created container fail", true}} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			rt := failingRuntime(t, tc.killFails)
			runStuckPod(t, stuckPodCase{handler: "failstart", root: root, startErr: refusedStart, config: `
[runtimes.failstart]
runtime_path = "` + rt + `"
runtime_root = "` + root + `"
monitor_path = "/usr/bin/conmon"
`})
		})
	}
}

// TestRunscAsPlainOCIHandlerLeavesNoPodStuck is the reported configuration
// itself: gVisor's runsc given as an ordinary OCI handler (no
// runtime_type = "sandboxed"). Its start fails in the pod's network
// namespace and it will not signal the created container.
func TestRunscAsPlainOCIHandlerLeavesNoPodStuck(t *testing.T) {
	needRunsc(t)
	root := t.TempDir()
	// Registered before the daemon's cleanup, so it runs after it.
	t.Cleanup(func() {
		if left := processesUnder(root); len(left) > 0 {
			t.Errorf("gVisor processes left: %v", left)
		}
	})
	runStuckPod(t, stuckPodCase{handler: "runsc", root: root, config: `
[runtimes.runsc]
runtime_path = "/usr/bin/runsc"
runtime_root = "` + root + `"
monitor_path = "/usr/bin/conmon"
`})
}

func runStuckPod(t *testing.T, tc stuckPodCase) {
	harness.CheckLeaks(t)
	reg := fixtures.StartRegistry(t, fixtures.RegistryOptions{})
	reg.PushBusybox(t, "busybox:ct")
	d := harness.StartDaemon(t, harness.Options{RegistriesConf: reg.RegistriesConf(false), ConfigTOML: tc.config})
	// Whatever floe leaves in the handler's root is deleted before the
	// daemon's own cleanup runs (cleanups run last first), so a failing
	// run does not leave the host a stuck container.
	t.Cleanup(func() { forceDeleteAll(t, tc) })
	ctx := harness.Ctx(t)
	env := &containerEnv{d: d, image: reg.Ref("busybox:ct"), logDir: t.TempDir()}
	if _, err := d.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: env.image}}); err != nil {
		t.Fatalf("pull %s: %v", env.image, err)
	}
	// What the pod makes, from here on, must be gone after its removal,
	// checked before the daemon's own cleanup could hide it.
	before := harness.Snapshot(t, d.IPAMDir)
	hostPort := int32(20000 + time.Now().UnixNano()%20000)
	env.podCfg = podConfig("stuck")
	env.podCfg.LogDirectory = env.logDir
	env.podCfg.PortMappings = []*runtimeapi.PortMapping{{HostPort: hostPort, ContainerPort: 8080, Protocol: runtimeapi.Protocol_TCP}}
	resp, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: env.podCfg, RuntimeHandler: tc.handler})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	env.podID = resp.PodSandboxId
	dport := "--dport " + strconv.Itoa(int(hostPort))
	if rules := harness.MustRun(t, "iptables-save", "-t", "nat"); !strings.Contains(rules, dport) {
		t.Fatalf("no portmap rule for host port %d: the test does not test the DNAT teardown", hostPort)
	}
	var ids []string
	for _, name := range []string{"stopped-alone", "stopped-with-pod"} {
		resp, err := d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: env.podID, Config: env.config(name, "sleep", "3600"), SandboxConfig: env.podCfg})
		if err != nil {
			t.Fatalf("CreateContainer %s: %v", name, err)
		}
		_, err = d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId})
		if err == nil || !strings.Contains(err.Error(), tc.startErr) {
			t.Fatalf("StartContainer %s: %v, want the runtime's refusal %q", name, err, tc.startErr)
		}
		ids = append(ids, resp.ContainerId)
	}
	if out := runtimeList(t, tc); len(out) != 2 {
		t.Fatalf("runtime containers after the failed starts: %q, want both created", out)
	}
	if _, err := d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ids[0], Timeout: 5}); err != nil {
		t.Errorf("StopContainer of a container whose start failed: %v", err)
	} else if st := env.status(t, ids[0]); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("container after StopContainer: %v, want exited", st.State)
	}
	if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: env.podID}); err != nil {
		t.Errorf("StopPodSandbox with a container whose start failed: %v", err)
	}
	if rules := harness.MustRun(t, "iptables-save", "-t", "nat"); strings.Contains(rules, dport) {
		t.Errorf("the portmap DNAT rule for host port %d survives StopPodSandbox", hostPort)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: env.podID}); err != nil {
		t.Errorf("RemovePodSandbox: %v", err)
	}
	checkPodGone(t, d, tc, before)
}

// checkPodGone fails the test for anything of the removed pod still
// there, before the daemon's own cleanup could hide it.
func checkPodGone(t *testing.T, d *harness.Daemon, tc stuckPodCase, before *harness.HostState) {
	t.Helper()
	if pods := listPods(t, d); len(pods) != 0 {
		t.Errorf("pods listed after RemovePodSandbox: %v", pods)
	}
	if out := runtimeList(t, tc); len(out) != 0 {
		t.Errorf("runtime containers left in %s: %q", tc.root, out)
	}
	// The remover unmounts the writable layers just after the answer.
	deadline := time.Now().Add(10 * time.Second)
	leaks := before.Leaks(t)
	for len(leaks) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		leaks = before.Leaks(t)
	}
	for _, kind := range harness.SortedKinds(leaks) {
		t.Errorf("left by the removed pod: %s", kind)
	}
}

// runtimeBinary is the runtime that keeps the handler's containers.
func runtimeBinary(tc stuckPodCase) string {
	if tc.handler == "runsc" {
		return "/usr/bin/runsc"
	}
	return "runc"
}

// runtimeList lists the container ids in the handler's root (runc and
// runsc both print JSON with --format=json; runc prints null for none).
func runtimeList(t *testing.T, tc stuckPodCase) []string {
	t.Helper()
	out, err := harness.Run(t, runtimeBinary(tc), "--root="+tc.root, "list", "--format=json")
	if err != nil {
		t.Fatalf("%s list: %v: %s", runtimeBinary(tc), err, out)
	}
	var list []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("%s list: %v: %s", runtimeBinary(tc), err, out)
	}
	var ids []string
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	return ids
}

// forceDeleteAll deletes every container left in the handler's root.
func forceDeleteAll(t *testing.T, tc stuckPodCase) {
	for _, id := range runtimeList(t, tc) {
		if o, err := harness.Run(t, runtimeBinary(tc), "--root="+tc.root, "delete", "--force", id); err != nil {
			t.Logf("clean up container %s: %v: %s", id, err, o)
		}
	}
}

// A created container whose conmon died (killed, OOM-killed) has no one
// to write its exit: StopContainer, StopPodSandbox and RemovePodSandbox
// must still succeed, recording an unknown exit, and leave nothing.
func TestCreatedContainerWithLostConmonLeavesNoPodStuck(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	ctx := harness.Ctx(t)
	var ids []string
	for _, name := range []string{"stopped-alone", "stopped-with-pod"} {
		resp, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: e.config(name, "sleep", "1000"), SandboxConfig: e.podCfg})
		if err != nil {
			t.Fatal(err)
		}
		out, err := floeCLI(t, e.d, "inspect", "container", resp.ContainerId, "--json")
		if err != nil {
			t.Fatalf("floe inspect container: %v\n%s", err, out)
		}
		var c inspect.Container
		if err := json.Unmarshal([]byte(out), &c); err != nil || c.ConmonPid == 0 {
			t.Fatalf("inspect: %v %+v", err, c)
		}
		if err := syscall.Kill(c.ConmonPid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill the container's conmon %d: %v", c.ConmonPid, err)
		}
		ids = append(ids, resp.ContainerId)
	}
	if _, err := e.d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ids[0], Timeout: 5}); err != nil {
		t.Errorf("StopContainer of a created container without its conmon: %v", err)
	} else if st := e.status(t, ids[0]); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("container after StopContainer: %v, want exited", st.State)
	}
	if _, err := e.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Errorf("StopPodSandbox with a created container without its conmon: %v", err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Errorf("RemovePodSandbox: %v", err)
	}
	if pods := listPods(t, e.d); len(pods) != 0 {
		t.Errorf("pods listed after RemovePodSandbox: %v", pods)
	}
}
