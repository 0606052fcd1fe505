package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/inspect"
	"github.com/floe-cri/floe/test/harness"
)

func floeCLI(t *testing.T, d *harness.Daemon, args ...string) (string, error) {
	t.Helper()
	args = append(args, "--config", filepath.Join(d.Dir, "floe.toml"), "--socket", d.Socket, "--inspect-socket", d.InspectSocket)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, harness.FloeBinary(t), args...).CombinedOutput()
	return string(out), err
}

func TestInspectPodNamesTheRightVethAndNetns(t *testing.T) {
	harness.CheckLeaks(t)
	d := harness.StartDaemon(t, harness.Options{})
	resp, err := d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig("inspectme")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := floeCLI(t, d, "inspect", "pod", "itest/inspectme", "--json")
	if err != nil {
		t.Fatalf("floe inspect: %v\n%s", err, out)
	}
	var pod inspect.Pod
	if err := json.Unmarshal([]byte(out), &pod); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, out)
	}
	if pod.ID != resp.PodSandboxId || pod.HostLink == nil || pod.HostLink.Name == "" {
		t.Fatalf("inspect report = %+v", pod)
	}
	// The host veth it names is the one `ip -o link` shows with the pod's
	// netns as its peer's namespace, with the same ifindex and bridge.
	links := harness.MustRun(t, "ip", "-o", "-d", "link", "show", pod.HostLink.Name)
	if !strings.HasPrefix(links, strconv.Itoa(pod.HostLink.Index)+": "+pod.HostLink.Name+"@") ||
		!strings.Contains(links, "link-netns "+pod.NetnsName) || !strings.Contains(links, "master "+d.Bridge) {
		t.Errorf("inspect says veth %s (ifindex %d) in %s on %s, ip link says:\n%s", pod.HostLink.Name, pod.HostLink.Index, pod.NetnsName, d.Bridge, links)
	}
	if pod.HostLink.Bridge != d.Bridge {
		t.Errorf("bridge = %q, want %q", pod.HostLink.Bridge, d.Bridge)
	}
	// A process in the pod's network namespace is identified by the
	// kernel as living in the netns the report names.
	sleeper := exec.Command("ip", "netns", "exec", pod.NetnsName, "sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	var ident string
	for i := 0; i < 50 && ident == ""; i++ {
		time.Sleep(20 * time.Millisecond)
		ident, _ = harness.Run(t, "ip", "netns", "identify", strconv.Itoa(sleeper.Process.Pid))
	}
	if ident != pod.NetnsName {
		t.Errorf("ip netns identify = %q, inspect says %q", ident, pod.NetnsName)
	}
	if len(pod.IPs) != 1 || len(pod.CNIResult) == 0 || pod.CNINetwork == "" {
		t.Errorf("network part of the report: %+v", pod)
	}
	// The human view names the same things on one screen.
	text, err := floeCLI(t, d, "inspect", "pod", resp.PodSandboxId[:10])
	if err != nil {
		t.Fatalf("floe inspect: %v\n%s", err, text)
	}
	for _, want := range []string{pod.NetnsName, pod.HostLink.Name, d.Bridge, pod.IPs[0], "ip netns exec " + pod.NetnsName} {
		if !strings.Contains(text, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, text)
		}
	}
	if out, err := floeCLI(t, d, "inspect", "pod", "nosuchpod"); err == nil || !strings.Contains(out, "no pod with id, id prefix or name") {
		t.Errorf("unknown pod: %v %s", err, out)
	}
	list, err := floeCLI(t, d, "pods")
	if err != nil || !strings.Contains(list, "itest/inspectme") || !strings.Contains(list, pod.IPs[0]) {
		t.Errorf("floe pods: %v\n%s", err, list)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+-]+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func TestInfoStatusAndMetrics(t *testing.T) {
	harness.CheckLeaks(t)
	d := harness.StartDaemon(t, harness.Options{})
	ctx := harness.Ctx(t)
	in, err := inspect.NewClient(d.InspectSocket).Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if in.CRISocket != d.Socket || in.CgroupDriver != "cgroupfs" || in.Runtimes["runc"].Path != "/usr/sbin/runc" || in.Runtimes["runc"].Problem != "" ||
		in.Runtimes["runc"].Root != "" || in.CNINetwork != "floetest-"+d.Bridge || in.MetricsAddress == "" {
		t.Errorf("/info = %+v", in)
	}
	st, err := d.Runtime.Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	handlers := map[string]*runtimeapi.RuntimeHandler{}
	for _, h := range st.RuntimeHandlers {
		handlers[h.Name] = h
	}
	// runc 1.1 has rro; user namespaces are offered exactly when floe's
	// own probe (kernel idmapped mounts, storage id shifting) passed, and
	// /info says by which mechanism or why not.
	if in.UserNamespaces == nil || (in.UserNamespaces.Enabled && in.UserNamespaces.Mechanism == "") || (!in.UserNamespaces.Enabled && in.UserNamespaces.Reason == "") {
		t.Errorf("/info user namespaces = %+v", in.UserNamespaces)
	} else if h := handlers["runc"]; h == nil || !h.Features.RecursiveReadOnlyMounts || h.Features.UserNamespaces != in.UserNamespaces.Enabled {
		t.Errorf("runc handler features = %v, /info user namespaces = %+v", h, in.UserNamespaces)
	}
	if handlers[""] == nil || st.Features == nil {
		t.Errorf("default handler or runtime features missing: %v", st)
	}
	var verbose map[string]any
	if err := json.Unmarshal([]byte(st.Info["info"]), &verbose); err != nil || verbose["handlerFeatures"] == nil || verbose["config"] == nil {
		t.Errorf("Status verbose info = %v (%v)", st.Info, err)
	}
	metricsURL := "http://" + in.MetricsAddress + "/metrics"
	before := httpGet(t, metricsURL)
	for _, series := range []string{"floe_cri_requests_total", "floe_cri_request_duration_seconds", "floe_pod_sandboxes",
		"go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(before, series) {
			t.Errorf("metrics lack %s", series)
		}
	}
	resp, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podConfig("metered")})
	if err != nil {
		t.Fatal(err)
	}
	d.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: "nope"})
	after := httpGet(t, metricsURL)
	if v := metricValue(t, after, `floe_cri_requests_total{code="OK",method="RunPodSandbox"}`); v != 1 {
		t.Errorf("RunPodSandbox OK count = %v\n%s", v, after)
	}
	if v := metricValue(t, after, `floe_cri_requests_total{code="NotFound",method="PodSandboxStatus"}`); v != 1 {
		t.Errorf("PodSandboxStatus NotFound count = %v", v)
	}
	if v := metricValue(t, after, `floe_cni_operation_duration_seconds_count{operation="add"}`); v != 1 {
		t.Errorf("CNI add count = %v", v)
	}
	if v := metricValue(t, after, `floe_pod_sandboxes{state="ready"}`); v != 1 {
		t.Errorf("ready sandboxes = %v", v)
	}
	if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	after = httpGet(t, metricsURL)
	if v := metricValue(t, after, `floe_cni_operation_duration_seconds_count{operation="del"}`); v != 1 {
		t.Errorf("CNI del count = %v", v)
	}
	if v := metricValue(t, after, `floe_pod_sandboxes{state="notready"}`); v != 1 {
		t.Errorf("notready sandboxes = %v", v)
	}

	out, err := floeCLI(t, d, "status")
	if err != nil {
		t.Fatalf("floe status: %v\n%s", err, out)
	}
	for _, want := range []string{"RuntimeReady", "NetworkReady", "true", "/usr/sbin/runc", "usable", "floetest-" + d.Bridge, in.MetricsAddress, filepath.Join(d.Dir, "floe.toml")} {
		if !strings.Contains(out, want) {
			t.Errorf("floe status lacks %q:\n%s", want, out)
		}
	}
	d.Stop()
	if out, err := floeCLI(t, d, "status"); err == nil || !strings.Contains(out, "not answering") {
		t.Errorf("floe status with the daemon down: %v\n%s", err, out)
	}
}

func TestStartupDiagnosticsKeepRunningWhereTheyCan(t *testing.T) {
	d := harness.StartDaemon(t, harness.Options{
		ConfigTOML: "[runtimes.runc]\nruntime_path = \"/nonexistent/runc\"\n",
		ExtraArgs:  []string{"--cni-config-dir", "/nonexistent/cni"},
	})
	log := d.Log()
	for _, want := range []string{"floe startup checks:", "/nonexistent/runc is missing or not executable",
		"/nonexistent/cni", "overlayfs", "cgroup driver"} {
		if !strings.Contains(log, want) {
			t.Errorf("startup block lacks %q:\n%s", want, log)
		}
	}
	st, err := d.Runtime.Status(harness.Ctx(t), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Status.Conditions {
		if c.Status {
			t.Errorf("%s is true with a missing runtime and CNI dir", c.Type)
		}
		if c.Type == runtimeapi.RuntimeReady && !strings.Contains(c.Message, "/nonexistent/runc") {
			t.Errorf("RuntimeReady message does not name the binary: %q", c.Message)
		}
	}
	// The systemd driver on a host without systemd is the one fatal case.
	// On a host with systemd that daemon would serve: check first, and
	// bound it anyway so a wrong refusal cannot hang the suite.
	if _, statErr := os.Stat("/run/systemd/system"); statErr == nil {
		t.Skip("systemd runs here")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(harness.Ctx(t), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, harness.FloeBinary(t), "serve", "--config", filepath.Join(d.Dir, "floe.toml"), "--cgroup-manager", "systemd",
		"--state-dir", dir+"/s", "--run-dir", dir+"/r", "--socket", dir+"/c.sock", "--inspect-socket", dir+"/i.sock", "--metrics-address", "").CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("floe serve --cgroup-manager systemd without systemd did not exit within 30 s:\n%s", out)
	}
	if err == nil || !strings.Contains(string(out), "systemd is not running") || !strings.Contains(string(out), "cgroupDriver") ||
		!strings.Contains(string(out), "cgroup_manager") {
		t.Errorf("systemd driver without systemd: %v\n%s", err, out)
	}
}

func TestSIGHUPReloadsLogLevel(t *testing.T) {
	d := harness.StartDaemon(t, harness.Options{LogLevelFromConfig: true, ConfigTOML: "log_level = \"info\"\n"})
	ctx := harness.Ctx(t)
	d.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
	if strings.Contains(d.Log(), "method=/runtime.v1.RuntimeService/Version") {
		t.Fatalf("debug RPC lines logged at info level")
	}
	// The harness writes a test's ConfigTOML as the drop-in floe.d/50-test.toml.
	if err := os.WriteFile(filepath.Join(d.Dir, "floe.d", "50-test.toml"), []byte("log_level = \"debug\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.Log(), "SIGHUP: configuration reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload:\n%s", d.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
	if !strings.Contains(d.Log(), "method=/runtime.v1.RuntimeService/Version") {
		t.Errorf("log level did not change to debug:\n%s", d.Log())
	}
}
