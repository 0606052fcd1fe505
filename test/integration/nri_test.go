package integration

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/inspect"
	"github.com/floe-cri/floe/test/harness"
)

// nriPlugin is a running external plugin; stop ends it and waits.
type nriPlugin struct {
	cmd   *exec.Cmd
	lines chan string
}

// startNRIPlugin runs test/nriplugin against socket and waits until
// floe has synchronised it.
func startNRIPlugin(t *testing.T, socket string, args ...string) *nriPlugin {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, harness.GoBinary(t, "./test/nriplugin"), append([]string{"--socket", socket}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nriPlugin{cmd: cmd, lines: make(chan string, 100)}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { cancel(); cmd.Wait() })
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatal("NRI plugin exited before it was synchronised")
			}
			if strings.HasPrefix(l, "synchronized") {
				return p
			}
		case <-time.After(20 * time.Second):
			t.Fatal("NRI plugin was not synchronised within 20s")
		}
	}
}

// A real NRI plugin, connected to floe's socket, injects an environment
// variable and a bind mount and pins a cpuset; the container has all
// three. Once the plugin is gone, containers are made as before.
func TestNRIPluginAdjustsContainers(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "marker"), []byte("from-the-plugin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plugin := startNRIPlugin(t, e.d.NRISocket, "--env", "NRI_INJECTED=yes", "--mount", src+":/nri-mount", "--cpuset", "1")
	script := `echo "env=$NRI_INJECTED"; cat /nri-mount/marker 2>&1; grep Cpus_allowed_list /proc/self/status`
	// /info (and so `floe status`) shows the socket and the plugin. The
	// plugin says "synchronized" when the sync reaches it; the runtime
	// lists it once the plugin's reply is in, a moment later.
	var in *inspect.Info
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		in, err = inspect.NewClient(e.d.InspectSocket).Info(harness.Ctx(t))
		if (err == nil && in.NRI.Plugins == 1) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || !in.NRI.Enabled || in.NRI.Socket != e.d.NRISocket || in.NRI.Plugins != 1 || len(in.NRI.Names) != 1 || in.NRI.Names[0] != "50-floetest" {
		t.Errorf("/info nri: %+v (%v)", in.NRI, err)
	}

	_, out := e.runToExit(t, e.config("nri-adjusted", "sh", "-c", script))
	for _, want := range []string{"env=yes", "from-the-plugin", "Cpus_allowed_list:\t1"} {
		if !strings.Contains(out, want) {
			t.Errorf("container output %q lacks %q", out, want)
		}
	}

	plugin.cmd.Process.Signal(os.Interrupt)
	plugin.cmd.Wait()
	_, out = e.runToExit(t, e.config("nri-gone", "sh", "-c", script))
	if strings.Contains(out, "env=yes") || strings.Contains(out, "from-the-plugin") {
		t.Errorf("after the plugin left: %q", out)
	}
	ctx := harness.Ctx(t)
	if _, err := e.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
}

// A plugin in plugin_path is started by floe itself, configured from
// plugin_config_path, and adjusts containers like an external one; it
// ends with the daemon.
func TestNRIPreinstalledPlugin(t *testing.T) {
	harness.CheckLeaks(t)
	pluginDir, confDir := t.TempDir(), t.TempDir()
	bin, err := os.ReadFile(harness.GoBinary(t, "./test/nriplugin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pluginDir, "10-preinstalled"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-preinstalled.conf"), []byte("env=NRI_PRE=installed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newContainerEnvWith(t, containerEnvOptions{ConfigTOML: "[nri]\nplugin_path = \"" + pluginDir + "\"\nplugin_config_path = \"" + confDir + "\"\n"})
	ctx := harness.Ctx(t)
	in, err := inspect.NewClient(e.d.InspectSocket).Info(ctx)
	if err != nil || in.NRI.Plugins != 1 || len(in.NRI.Names) != 1 || in.NRI.Names[0] != "10-preinstalled" {
		t.Errorf("/info nri: %+v (%v)", in.NRI, err)
	}
	if _, out := e.runToExit(t, e.config("pre", "sh", "-c", `echo "env=$NRI_PRE"`)); out != "env=installed" {
		t.Errorf("container output %q, want env=installed", out)
	}
	if _, err := e.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
}

// waitLine waits for a line of the plugin's output that starts with
// prefix, skipping others.
func (p *nriPlugin) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("NRI plugin exited before printing %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("NRI plugin did not print %q within 20s", prefix)
		}
	}
}

// UpdatePodSandboxResources reaches NRI plugins as UpdatePodSandbox with
// the pod's resources, then PostUpdatePodSandbox; a plugin's refusal
// fails the request.
func TestNRIPluginSeesPodResourceUpdates(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	plugin := startNRIPlugin(t, e.d.NRISocket, "--max-pod-memory", "134217728")
	ctx := harness.Ctx(t)
	update := func(mem int64) error {
		_, err := e.d.Runtime.UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: e.podID,
			Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: mem, CpuShares: 512}})
		return err
	}
	if err := update(64 << 20); err != nil {
		t.Fatalf("UpdatePodSandboxResources: %v", err)
	}
	if l := plugin.waitLine(t, "pod-update "); l != "pod-update ctr memory=67108864" {
		t.Errorf("plugin saw %q", l)
	}
	plugin.waitLine(t, "post-pod-update ctr")
	err := update(1 << 30)
	if err == nil || !strings.Contains(err.Error(), "above 134217728") {
		t.Fatalf("UpdatePodSandboxResources refused by the plugin: %v", err)
	}
	if l := plugin.waitLine(t, "pod-update "); l != "pod-update ctr memory=1073741824" {
		t.Errorf("plugin saw %q", l)
	}
	if _, err := e.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
}
