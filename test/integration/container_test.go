package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/fixtures"
	"github.com/floe-cri/floe/test/harness"
)

// containerEnv is a daemon with the test busybox image pulled and a ready
// pod whose logs go to a temp dir.
type containerEnv struct {
	d      *harness.Daemon
	image  string
	podID  string
	podCfg *runtimeapi.PodSandboxConfig
	logDir string
	images map[string]string // tag -> pulled reference
}

func newContainerEnv(t *testing.T, pod func(*runtimeapi.PodSandboxConfig)) *containerEnv {
	t.Helper()
	return newContainerEnvWith(t, containerEnvOptions{Pod: pod})
}

// containerEnvOptions vary newContainerEnvWith.
type containerEnvOptions struct {
	Pod        func(*runtimeapi.PodSandboxConfig)
	ConfigTOML string // daemon drop-in
	// Images are pushed and pulled besides busybox:ct; the env's images
	// map holds their pulled references by tag.
	Images map[string]*fixtures.Image
	// Handler is the pod's runtime handler ("" for the default).
	Handler string
}

func newContainerEnvWith(t *testing.T, o containerEnvOptions) *containerEnv {
	t.Helper()
	reg := fixtures.StartRegistry(t, fixtures.RegistryOptions{})
	reg.PushBusybox(t, "busybox:ct")
	for tag, img := range o.Images {
		reg.Push(t, tag, img)
	}
	d := harness.StartDaemon(t, harness.Options{RegistriesConf: reg.RegistriesConf(false), ConfigTOML: o.ConfigTOML})
	ctx := harness.Ctx(t)
	env := &containerEnv{d: d, image: reg.Ref("busybox:ct"), logDir: t.TempDir(), images: map[string]string{}}
	for _, tag := range append([]string{"busybox:ct"}, keys(o.Images)...) {
		ref := reg.Ref(tag)
		if _, err := d.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		env.images[tag] = ref
	}
	env.podCfg = podConfig("ctr")
	env.podCfg.LogDirectory = env.logDir
	if o.Pod != nil {
		o.Pod(env.podCfg)
	}
	resp, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: env.podCfg, RuntimeHandler: o.Handler})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	env.podID = resp.PodSandboxId
	return env
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func (e *containerEnv) config(name string, cmd ...string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: e.image},
		Command:  cmd,
		LogPath:  name + ".log",
		Labels:   map[string]string{"ctr": name},
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{}},
	}
}

func (e *containerEnv) run(t *testing.T, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	ctx := harness.Ctx(t)
	resp, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: cfg, SandboxConfig: e.podCfg})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", cfg.Metadata.Name, err)
	}
	if _, err := e.d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	return resp.ContainerId
}

func (e *containerEnv) status(t *testing.T, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	resp, err := e.d.Runtime.ContainerStatus(harness.Ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus: %v", err)
	}
	return resp.Status
}

func (e *containerEnv) waitExited(t *testing.T, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := e.status(t, id)
		if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s did not exit: %v", id, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestContainerLifecycleLogsExecAndExitCodes(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	ctx := harness.Ctx(t)
	id := e.run(t, e.config("web", "sh", "-c", "echo out-line; echo err-line >&2; printf partial; exec sleep 1000"))
	st := e.status(t, id)
	if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING || st.StartedAt == 0 || st.ImageRef == "" || st.LogPath != filepath.Join(e.logDir, "web.log") {
		t.Fatalf("status after start: %v", st)
	}
	// runc's default root: plain `runc list` shows it.
	if out := harness.MustRun(t, "runc", "list"); !strings.Contains(out, id) {
		t.Errorf("runc list does not show %s:\n%s", id, out)
	}
	verbose, err := e.d.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id[:12], Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Pid         int             `json:"pid"`
		Bundle      string          `json:"bundle"`
		RuntimeSpec json.RawMessage `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(verbose.Info["info"]), &info); err != nil || info.Pid == 0 || info.Bundle == "" || len(info.RuntimeSpec) == 0 {
		t.Errorf("verbose info = %s (%v)", verbose.Info["info"], err)
	}
	// The container is in the pod's network namespace.
	_, podInfo := status2(t, e.d, e.podID)
	podNet := harness.MustRun(t, "readlink", "/proc/"+strconv.Itoa(info.Pid)+"/ns/net")
	if pinned := harness.MustRun(t, "nsenter", "--net="+podInfo.NetnsPath, "readlink", "/proc/self/ns/net"); pinned != podNet {
		t.Errorf("container netns %s, pod netns %s", podNet, pinned)
	}
	exec, err := e.d.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "hostname; echo e >&2; exit 3"}, Timeout: 10})
	if err != nil || string(exec.Stdout) != "ctr-host\n" || string(exec.Stderr) != "e\n" || exec.ExitCode != 3 {
		t.Errorf("ExecSync = %q %q %d, %v", exec.GetStdout(), exec.GetStderr(), exec.GetExitCode(), err)
	}
	if _, err := e.d.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sleep", "30"}, Timeout: 1}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("ExecSync timeout: %v", err)
	}
	list, _ := e.d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: e.podID,
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	if len(list.GetContainers()) != 1 {
		t.Errorf("ListContainers running = %v", list)
	}
	// sleep as PID 1 ignores SIGTERM: the timeout ends it with SIGKILL.
	if _, err := e.d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 2}); err != nil {
		t.Fatal(err)
	}
	st = e.waitExited(t, id)
	if st.ExitCode != 143 && st.ExitCode != 137 {
		t.Errorf("exit code after stop = %d", st.ExitCode)
	}
	logData, _ := os.ReadFile(st.LogPath)
	for _, want := range []string{" stdout F out-line\n", " stderr F err-line\n", " stdout P partial\n"} {
		if !strings.Contains(string(logData), want) {
			t.Errorf("CRI log lacks %q:\n%s", want, logData)
		}
	}
	if _, err := e.d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id}); err != nil {
		t.Errorf("second stop: %v", err)
	}

	// Exit codes and reasons.
	ok := e.run(t, e.config("ok", "true"))
	bad := e.run(t, e.config("bad", "sh", "-c", "exit 7"))
	if st := e.waitExited(t, ok); st.ExitCode != 0 || st.Reason != "Completed" || st.FinishedAt == 0 {
		t.Errorf("true: %v", st)
	}
	if st := e.waitExited(t, bad); st.ExitCode != 7 || st.Reason != "Error" {
		t.Errorf("exit 7: %v", st)
	}
	for _, c := range []string{id, ok, bad} {
		for i := 0; i < 2; i++ {
			if _, err := e.d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c}); err != nil {
				t.Fatalf("RemoveContainer #%d: %v", i, err)
			}
		}
	}
	if _, err := e.d.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id}); status.Code(err) != codes.NotFound {
		t.Errorf("status after remove: %v", err)
	}
}

func TestContainerBadRequests(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	ctx := harness.Ctx(t)
	create := func(podID string, cfg *runtimeapi.ContainerConfig) error {
		_, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg})
		return err
	}
	noName := e.config("x", "true")
	noName.Metadata.Name = ""
	noImage := e.config("x", "true")
	noImage.Image.Image = ""
	missingMount := e.config("x", "true")
	missingMount.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/nonexistent/floe-test"}}
	cases := []struct {
		name  string
		err   error
		code  codes.Code
		field string
	}{
		{"no config", create(e.podID, nil), codes.InvalidArgument, "config"},
		{"no name", create(e.podID, noName), codes.InvalidArgument, "config.metadata.name"},
		{"no image", create(e.podID, noImage), codes.InvalidArgument, "config.image.image"},
		{"unknown pod", create("nosuchpod", e.config("x", "true")), codes.NotFound, "nosuchpod"},
		{"image not pulled", create(e.podID, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "y"}, Image: &runtimeapi.ImageSpec{Image: "127.0.0.1:1/none:1"}}), codes.NotFound, "pull it first"},
		{"missing host path", create(e.podID, missingMount), codes.InvalidArgument, "/nonexistent/floe-test"},
	}
	for _, c := range cases {
		if status.Code(c.err) != c.code || !strings.Contains(c.err.Error(), c.field) {
			t.Errorf("%s: %v, want %s naming %s", c.name, c.err, c.code, c.field)
		}
	}
	if r, _ := e.d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); len(r.GetContainers()) != 0 {
		t.Errorf("failed creations left containers: %v", r.Containers)
	}
	for _, rpc := range []error{
		func() error {
			_, err := e.d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: "nope"})
			return err
		}(),
		func() error {
			_, err := e.d.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: "nope"})
			return err
		}(),
	} {
		if status.Code(rpc) != codes.NotFound {
			t.Errorf("unknown container: %v", rpc)
		}
	}
	if _, err := e.d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: "nope"}); err != nil {
		t.Errorf("remove unknown container: %v", err)
	}
}
