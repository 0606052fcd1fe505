package integration

import (
	"encoding/json"
	"os"
	"os/exec"
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

func TestInspectContainerAndSIGTERMLeavesContainersRunning(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	d := e.d
	ctx := harness.Ctx(t)
	id := e.run(t, e.config("sleeper", "sleep", "1000"))

	out, err := floeCLI(t, d, "inspect", "container", "itest/ctr/sleeper", "--json")
	if err != nil {
		t.Fatalf("floe inspect container: %v\n%s", err, out)
	}
	var c inspect.Container
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if c.ID != id || c.State != "running" || c.Pid == 0 || c.ConmonPid == 0 || c.RuntimeRoot != "/run/runc" || c.LogPath == "" {
		t.Fatalf("report = %+v", c)
	}
	found := false
	for _, p := range c.Pids {
		found = found || p == c.Pid
	}
	if !found {
		t.Errorf("pids %v of the container cgroup lack the init %d", c.Pids, c.Pid)
	}
	// The command the report gives works as it is.
	args := strings.Fields(c.RuntimeState)
	state, err := exec.Command(args[0], args[1:]...).Output()
	if err != nil || !strings.Contains(string(state), `"status": "running"`) {
		t.Errorf("%s: %v\n%s", c.RuntimeState, err, state)
	}
	// The container's process is in the netns the pod report names.
	pod, err := inspect.NewClient(d.InspectSocket).Pod(ctx, e.podID)
	if err != nil {
		t.Fatal(err)
	}
	if ident, _ := harness.Run(t, "ip", "netns", "identify", strconv.Itoa(c.Pid)); ident != pod.NetnsName {
		t.Errorf("ip netns identify %d = %q, pod report says %q", c.Pid, ident, pod.NetnsName)
	}
	if len(pod.Containers) != 1 || pod.Containers[0].ID != id || pod.Containers[0].Pid != c.Pid {
		t.Errorf("pod report containers = %+v", pod.Containers)
	}
	text, err := floeCLI(t, d, "inspect", "container", id[:10])
	if err != nil || !strings.Contains(text, c.RuntimeState) || !strings.Contains(text, c.LogPath) {
		t.Errorf("inspect container text: %v\n%s", err, text)
	}
	in, err := inspect.NewClient(d.InspectSocket).Info(ctx)
	if err != nil || in.Storage == nil || in.Storage.Driver != "overlay" || in.Storage.Root != d.StorageRoot {
		t.Errorf("/info storage = %+v (%v)", in.Storage, err)
	}
	metrics := httpGet(t, "http://"+in.MetricsAddress+"/metrics")
	if v := metricValue(t, metrics, `floe_containers{state="running"}`); v != 1 {
		t.Errorf("running containers metric = %v", v)
	}
	if v := metricValue(t, metrics, `floe_image_pull_duration_seconds_count{result="success"}`); v != 1 {
		t.Errorf("pull metric = %v", v)
	}

	// SIGTERM: floe goes, the container stays and keeps its monitor.
	d.StopLeavingContainers()
	if err := syscall.Kill(c.Pid, 0); err != nil {
		t.Fatalf("container process gone after floe's SIGTERM: %v", err)
	}
	if err := syscall.Kill(c.ConmonPid, 0); err != nil {
		t.Fatalf("conmon gone after floe's SIGTERM: %v", err)
	}
	d.Start()
	st := e.status(t, id)
	if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("after restart: %v", st)
	}
	if _, err := d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	if st := e.waitExited(t, id); st.ExitCode != 137 && st.ExitCode != 143 {
		t.Errorf("exit after restart and stop: %v", st)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatalf("remove pod with its container: %v", err)
	}
	if r, _ := d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); len(r.GetContainers()) != 0 {
		t.Errorf("RemovePodSandbox left containers: %v", r.Containers)
	}
}

func TestSIGHUPReloadsRegistries(t *testing.T) {
	reg := fixtures.StartRegistry(t, fixtures.RegistryOptions{})
	reg.PushBusybox(t, "busybox:hup")
	d := harness.StartDaemon(t, harness.Options{
		RegistriesConf: reg.RegistriesConf(false),
		// No fallback search registry: a short name must not reach out.
		ConfigTOML: "[registries]\ndefault_search_registries = []\n",
	})
	ctx := harness.Ctx(t)
	pull := func() error {
		_, err := d.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "busybox:hup"}})
		return err
	}
	if err := pull(); err == nil {
		t.Fatal("short name resolved without a search registry")
	}
	if err := os.WriteFile(d.RegistriesConf, []byte(reg.RegistriesConf(true)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.Log(), "registries configuration reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no registries reload:\n%s", d.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := pull(); err != nil {
		t.Fatalf("short name after SIGHUP: %v", err)
	}
}
