package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/harness"
)

// runscConfig is the [runtimes.runsc] table the gVisor tests use, with the
// handler's state in root.
func runscConfig(root string) string {
	return fmt.Sprintf(`
[runtimes.runsc]
runtime_path = "/usr/bin/runsc"
runtime_type = "sandboxed"
runtime_root = %q
# runsc 20221219's own network stack refuses this kernel (it takes every
# netns for the host's): the pod's netns through the host kernel's stack.
runtime_args = ["--network=host"]
monitor_path = "/usr/bin/conmon"
`, root)
}

// needRunsc skips without runsc, or fails under CI (hack/install-deps.sh
// installs it, so a CI host without it is broken, not exempt).
func needRunsc(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/runsc"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("runsc is not installed (CI=true): hack/install-deps.sh installs the Debian package runsc: %v", err)
		}
		t.Skip("runsc not installed (hack/install-deps.sh installs it)")
	}
}

// runscEnv is a container env whose pod runs under gVisor, with the
// handler's state in a root of the test's own.
func runscEnv(t *testing.T) (*containerEnv, string) {
	t.Helper()
	needRunsc(t)
	root := t.TempDir()
	// Registered before the daemon's cleanup, so it runs after it (LIFO):
	// once the daemon has removed every pod, no gVisor process may stay.
	t.Cleanup(func() {
		if left := processesUnder(root); len(left) > 0 {
			t.Errorf("gVisor processes left: %v", left)
		}
	})
	env := newContainerEnvWith(t, containerEnvOptions{Handler: "runsc", ConfigTOML: runscConfig(root), Pod: func(c *runtimeapi.PodSandboxConfig) {
		// One process list for the pod (shareProcessNamespace).
		c.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD},
		}}
	}})
	return env, root
}

// processesUnder lists processes whose command line names dir (runsc's
// sandbox and gofers carry their --root).
func processesUnder(dir string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), dir) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// podPIDConfig is a container that shares the pod's process list.
func (e *containerEnv) podPIDConfig(name string, cmd ...string) *runtimeapi.ContainerConfig {
	c := e.config(name, cmd...)
	c.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}
	return c
}

// runscHTTPGet fetches url from the host, retrying until limit.
func runscHTTPGet(url string, limit time.Duration) (string, error) {
	var lastErr error
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(url)
		if err != nil {
			lastErr = err
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b), err
	}
	return "", lastErr
}

// TestRunscTwoContainerPodSharesOneSandbox runs a web server and a client
// in one gVisor pod: the client reaches the server on 127.0.0.1 (one
// network stack) and sees its process (one process list), the host
// reaches the server on the pod IP, logs and exec work, all of it again
// after a restart of floe, and everything goes away with the pod.
func TestRunscTwoContainerPodSharesOneSandbox(t *testing.T) {
	harness.CheckLeaks(t)
	env, root := runscEnv(t)
	ctx := harness.Ctx(t)

	srv := env.podPIDConfig("web", "sh", "-c", "mkdir -p /www && echo hello-from-gvisor > /www/index.html && echo serving && exec httpd -f -p 80 -h /www")
	webID := env.run(t, srv)
	cli := env.podPIDConfig("client", "sh", "-c", "echo client-up; exec sleep 3600")
	cliID := env.run(t, cli)

	ps, err := env.d.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: env.podID})
	if err != nil {
		t.Fatal(err)
	}
	if ps.Status.RuntimeHandler != "runsc" {
		t.Errorf("pod runtime handler = %q", ps.Status.RuntimeHandler)
	}
	// Port 80: a server below 1024 must bind under gVisor too.
	url := fmt.Sprintf("http://%s:80/", ps.Status.GetNetwork().GetIp())

	check := func(when string) {
		t.Helper()
		for _, id := range []string{webID, cliID} {
			if st := env.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				t.Fatalf("%s: container %s is %v (%s), want running", when, st.Metadata.Name, st.State, st.Message)
			}
		}
		if body, err := runscHTTPGet(url, 20*time.Second); strings.TrimSpace(body) != "hello-from-gvisor" {
			t.Fatalf("%s: host GET %s = %q, %v", when, url, body, err)
		}
		for _, target := range []string{"127.0.0.1", ps.Status.GetNetwork().GetIp()} {
			// nc gives up once its stdin has closed, 1 s after the request:
			// on a loaded host gVisor's answer can come later, so the
			// client tries again (as the host's GET above does) before
			// the pod counts as unreachable.
			var out string
			var code int32
			for try := 0; try < 5; try++ {
				out, code = env.exec(t, cliID, "sh", "-c", `(printf 'GET / HTTP/1.0\r\n\r\n'; sleep 1) | nc `+target+` 80`)
				if code == 0 && strings.Contains(out, "hello-from-gvisor") {
					break
				}
			}
			if code != 0 || !strings.Contains(out, "hello-from-gvisor") {
				t.Errorf("%s: client -> %s:80 in the pod = %q (exit %d)", when, target, out, code)
			}
		}
		if out, code := env.exec(t, cliID, "ps"); code != 0 || !strings.Contains(out, "httpd") {
			t.Errorf("%s: client's process list lacks the server's httpd (exit %d):\n%s", when, code, out)
		}
		// gVisor's own kernel answers, not the host's.
		if out, _ := env.exec(t, webID, "dmesg"); !strings.Contains(out, "gVisor") {
			t.Errorf("%s: dmesg in the pod does not come from gVisor:\n%s", when, out)
		}
		if out := env.output(t, webID); !strings.Contains(out, "serving") {
			t.Errorf("%s: web log = %q", when, out)
		}
		if out := env.output(t, cliID); !strings.Contains(out, "client-up") {
			t.Errorf("%s: client log = %q", when, out)
		}
	}
	check("before the restart")

	env.d.StopLeavingContainers()
	env.d.Start()
	check("after a restart of floe")

	for _, id := range []string{cliID, webID} {
		if _, err := env.d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 5}); err != nil {
			t.Errorf("StopContainer %s: %v", id, err)
		}
		if st := env.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			t.Errorf("container %s after stop: %v", id, st.State)
		}
		if _, err := env.d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Errorf("RemoveContainer %s: %v", id, err)
		}
	}
	for i := 0; i < 2; i++ { // idempotent
		if _, err := env.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: env.podID}); err != nil {
			t.Fatalf("StopPodSandbox: %v", err)
		}
	}
	if left := processesUnder(root); len(left) > 0 {
		t.Errorf("gVisor processes after StopPodSandbox: %v", left)
	}
	if _, err := env.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: env.podID}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
}

// TestRunscSelfExitingContainersReportTheirCodes: under gVisor conmon
// sees only the sandbox, so exits come from floe's per-container watcher.
// A container that exits by itself, one killed by a signal, and one that
// exits while floe is down are each reported exited with their own code,
// while the pod's other container keeps running.
func TestRunscSelfExitingContainersReportTheirCodes(t *testing.T) {
	harness.CheckLeaks(t)
	env, _ := runscEnv(t)
	keep := env.run(t, env.config("keep", "sleep", "3600"))

	id := env.run(t, env.config("exits", "sh", "-c", "echo bye; exit 7"))
	st := env.waitExited(t, id)
	if st.ExitCode != 7 || st.Reason != "Error" {
		t.Errorf("self-exiting container: code %d reason %q, want 7 Error", st.ExitCode, st.Reason)
	}
	if out := env.output(t, id); !strings.Contains(out, "bye") {
		t.Errorf("log of the exited container = %q", out)
	}

	killed := env.run(t, env.config("killed", "sh", "-c", "kill -9 $$"))
	if st := env.waitExited(t, killed); st.ExitCode != 137 {
		t.Errorf("container killed by SIGKILL: code %d, want 137", st.ExitCode)
	}

	later := env.run(t, env.config("later", "sh", "-c", "sleep 3; exit 5"))
	env.d.StopLeavingContainers()
	time.Sleep(4 * time.Second)
	env.d.Start()
	if st := env.waitExited(t, later); st.ExitCode != 5 {
		t.Errorf("container that exited while floe was down: code %d (%s), want 5", st.ExitCode, st.Message)
	}

	if st := env.status(t, keep); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("the pod's other container: %v, want running", st.State)
	}
	ctx := harness.Ctx(t)
	// A timed-out exec's process runs in the sandbox, out of reach of a
	// kill of the host's `runsc exec`: it must be gone all the same.
	if _, err := env.d.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: keep, Cmd: []string{"sleep", "47"}, Timeout: 1}); err == nil {
		t.Error("exec of sleep 47 with a 1 s timeout did not time out")
	}
	if out, _ := env.exec(t, keep, "ps"); strings.Contains(out, "sleep 47") {
		t.Errorf("the timed-out exec's process is still there:\n%s", out)
	}
	if _, err := env.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: env.podID}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if st := env.status(t, keep); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("container after StopPodSandbox: %v", st.State)
	}
	if _, err := env.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: env.podID}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
}

// TestRunscRefusesHostNamespaces: hostNetwork, hostIPC and hostPID pods
// are refused (FailedPrecondition) before anything is made: the sandbox
// brings its own kernel.
func TestRunscRefusesHostNamespaces(t *testing.T) {
	harness.CheckLeaks(t)
	env, _ := runscEnv(t)
	for name, ns := range map[string]*runtimeapi.NamespaceOption{
		"hostNetwork": {Network: runtimeapi.NamespaceMode_NODE},
		"hostIPC":     {Ipc: runtimeapi.NamespaceMode_NODE},
		"hostPID":     {Pid: runtimeapi.NamespaceMode_NODE},
	} {
		cfg := podConfig(strings.ToLower(name))
		cfg.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: ns}}
		_, err := env.d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: "runsc"})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), name) {
			t.Errorf("%s pod under runsc: %v", name, err)
		}
	}
}

// TestPodStartLatencyPerHandler measures, for runc and runsc side by side
// (alternating, so both see the same load), RunPodSandbox through a
// started container (sleep), and reports medians and their ratio. It fails
// only if a pod does not start.
func TestPodStartLatencyPerHandler(t *testing.T) {
	harness.CheckLeaks(t)
	env, _ := runscEnv(t)
	ctx := harness.Ctx(t)
	const samples = 7
	times := map[string][]time.Duration{}
	stopTimes := map[string][]time.Duration{}
	for i := 0; i < samples; i++ {
		order := []string{"runc", "runsc"}
		if i%2 == 1 {
			order = []string{"runsc", "runc"}
		}
		for _, handler := range order {
			cfg := podConfig(fmt.Sprintf("lat-%s-%d", handler, i))
			cfg.LogDirectory = env.logDir
			start := time.Now()
			pod, err := env.d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler})
			if err != nil {
				t.Fatalf("RunPodSandbox %s: %v", handler, err)
			}
			c := env.config(fmt.Sprintf("c%d", i), "sleep", "3600")
			created, err := env.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: c, SandboxConfig: cfg})
			if err != nil {
				t.Fatalf("CreateContainer %s: %v", handler, err)
			}
			if _, err := env.d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
				t.Fatalf("StartContainer %s: %v", handler, err)
			}
			times[handler] = append(times[handler], time.Since(start))
			start = time.Now()
			if _, err := env.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
				t.Fatalf("StopPodSandbox %s: %v", handler, err)
			}
			stopTimes[handler] = append(stopTimes[handler], time.Since(start))
			if _, err := env.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
				t.Fatalf("RemovePodSandbox %s: %v", handler, err)
			}
		}
	}
	med := func(d []time.Duration) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		return d[len(d)/2]
	}
	for _, h := range []string{"runc", "runsc"} {
		t.Logf("%s: pod start to running container %v; StopPodSandbox %v", h, times[h], stopTimes[h])
	}
	rc, rs := med(times["runc"]), med(times["runsc"])
	t.Logf("median pod start (RunPodSandbox+CreateContainer+StartContainer, %d samples each, alternating): runc %v, runsc %v (runsc/runc %.2f); median StopPodSandbox: runc %v, runsc %v",
		samples, rc.Round(time.Millisecond), rs.Round(time.Millisecond), float64(rs)/float64(rc), med(stopTimes["runc"]).Round(time.Millisecond), med(stopTimes["runsc"]).Round(time.Millisecond))
}

// A gVisor pod whose creation floe did not live to finish, killed right
// after the pod's pause container (its gVisor sandbox) started: the
// restarted floe undoes it by the pod id, gVisor sandbox included, as it
// undoes a runc pod's pinned namespaces.
func TestRunscKill9AfterPodSandboxStartIsUndoneOnRestart(t *testing.T) {
	harness.CheckLeaks(t)
	needRunsc(t)
	root := t.TempDir()
	t.Cleanup(func() {
		if left := processesUnder(root); len(left) > 0 {
			t.Errorf("gVisor processes left: %v", left)
		}
	})
	d := harness.StartDaemon(t, harness.Options{ConfigTOML: runscConfig(root)})
	d.Stop()
	d.CrashAt("sandbox.after-pod-sandbox-start")
	d.Start()
	cfg := podConfig("gvisor-halfmade")
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: "runsc"})
	if !d.WaitExit(90 * time.Second) {
		t.Fatalf("floe did not reach sandbox.after-pod-sandbox-start\n%s", d.Log())
	}
	if len(processesUnder(root)) == 0 {
		t.Fatal("no gVisor sandbox was running when floe died: the crash point is not where the test means it")
	}
	d.CrashAt("")
	d.Start()
	if pods := listPods(t, d); len(pods) != 0 {
		t.Errorf("half-made gVisor pod listed after restart: %v", pods)
	}
	if netnsWithPrefix("itest_gvisor-halfmade-") {
		t.Error("half-made gVisor pod's netns survived the restart")
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(processesUnder(root)) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if left := processesUnder(root); len(left) > 0 {
		t.Errorf("the half-made pod's gVisor sandbox outlived the restart: %v", left)
	}
	harness.Snapshot(t).AssertNoLeaks(t, d.IPAMDir)
}
