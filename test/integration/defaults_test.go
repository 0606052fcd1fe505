package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/harness"
)

// denyMkdirProfile allows every syscall but mkdir and mkdirat, which
// fail with EPERM (docker/moby profile format).
const denyMkdirProfile = `{"defaultAction":"SCMP_ACT_ALLOW",
 "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}`

// runIn creates and starts cfg in the pod podID (of podCfg) and waits for
// its end, returning its output.
func (e *containerEnv) runIn(t *testing.T, podID string, podCfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	ctx := harness.Ctx(t)
	resp, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: podCfg})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", cfg.Metadata.Name, err)
	}
	if _, err := e.d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	e.waitExited(t, resp.ContainerId)
	return strings.TrimSpace(e.output(t, resp.ContainerId))
}

func TestContainerNodeDefaultsSysctlsUlimitsPidsAndSeccompProfile(t *testing.T) {
	harness.CheckLeaks(t)
	profile := filepath.Join(t.TempDir(), "deny-mkdir.json")
	if err := os.WriteFile(profile, []byte(denyMkdirProfile), 0o644); err != nil {
		t.Fatal(err)
	}
	parent := kubeletCgroup(t, 0)
	// default_sysctls stays at floe's default; the pod overrides one.
	e := newContainerEnvWith(t, containerEnvOptions{
		ConfigTOML: fmt.Sprintf("[containers]\ndefault_ulimits = [\"nofile=1000:2000\"]\npids_limit = 123\nseccomp_profile = %q\n", profile),
		Pod: func(p *runtimeapi.PodSandboxConfig) {
			p.Linux.CgroupParent = parent
			p.Linux.Sysctls = map[string]string{"net.ipv4.ping_group_range": "0 1000"}
		},
	})
	probe := "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/net/ipv4/ping_group_range; echo nofile=$(ulimit -Sn):$(ulimit -Hn); mkdir /tmp/d; echo mkdir=$?"
	cfg := e.config("defaults", "sh", "-c", probe)
	e.sc(cfg).RunAsUser = i64(0)
	e.sc(cfg).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	_, out := e.runToExit(t, cfg)
	for _, want := range []string{"0\n0\t1000\n", "nofile=1000:2000", "Operation not permitted", "mkdir=1"} {
		if !strings.Contains(out, want) {
			t.Errorf("RuntimeDefault container: output lacks %q:\n%s", want, out)
		}
	}
	// Unconfined does not use the configured profile.
	cfg = e.config("unconfined", "sh", "-c", "mkdir /tmp/d; echo mkdir=$?")
	e.sc(cfg).RunAsUser = i64(0)
	e.sc(cfg).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	if _, out := e.runToExit(t, cfg); out != "mkdir=0" {
		t.Errorf("Unconfined container: %q", out)
	}
	// pids_limit is the container cgroup's pids.max (the CRI sends none).
	id := e.run(t, e.config("pids", "sleep", "1000"))
	if got := cgroupFile(t, "pids", parent+"/floe-"+id, "pids.max"); got != "123" {
		t.Errorf("pids.max = %s, want pids_limit 123", got)
	}
	// The kubelet's updates carry no pid limit; the default stays.
	if _, err := e.d.Runtime.UpdateContainerResources(harness.Ctx(t), &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id,
		Linux: &runtimeapi.LinuxContainerResources{CpuShares: 256, MemoryLimitInBytes: 64 << 20}}); err != nil {
		t.Fatalf("UpdateContainerResources: %v", err)
	}
	if got := cgroupFile(t, "pids", parent+"/floe-"+id, "pids.max"); got != "123" {
		t.Errorf("pids.max after an update = %s, want pids_limit 123", got)
	}

	// A host-network pod keeps the host's net.* sysctls: the defaults
	// would change the node.
	hostBefore := readHostSysctl(t, "net/ipv4/ip_unprivileged_port_start")
	hostPod := podConfig("hostnet")
	hostPod.LogDirectory = e.logDir
	hostPod.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	resp, err := e.d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: hostPod})
	if err != nil {
		t.Fatalf("RunPodSandbox host network: %v", err)
	}
	out = e.runIn(t, resp.PodSandboxId, hostPod, e.config("hostnet", "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"))
	if out != hostBefore {
		t.Errorf("host-network container sees %q, want the host's %q", out, hostBefore)
	}
	if after := readHostSysctl(t, "net/ipv4/ip_unprivileged_port_start"); after != hostBefore {
		t.Errorf("host's ip_unprivileged_port_start changed from %s to %s", hostBefore, after)
	}

	// SIGHUP re-reads the profile; a broken one keeps the one in force.
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	e.d.Signal(syscall.SIGHUP)
	waitDaemonLog(t, e.d, "SIGHUP: configuration reloaded", 1)
	cfg = e.config("reloaded", "sh", "-c", "mkdir /tmp/d; echo mkdir=$?")
	e.sc(cfg).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	if _, out := e.runToExit(t, cfg); out != "mkdir=0" {
		t.Errorf("after SIGHUP with an allow-all profile: %q", out)
	}
	if err := os.WriteFile(profile, []byte(`{"defaultAction":`), 0o644); err != nil {
		t.Fatal(err)
	}
	e.d.Signal(syscall.SIGHUP)
	waitDaemonLog(t, e.d, "container defaults not reloaded", 1)
	if !strings.Contains(e.d.Log(), profile) {
		t.Errorf("the reload error does not name %s", profile)
	}
	cfg = e.config("kept", "sh", "-c", "mkdir /tmp/d; echo mkdir=$?")
	e.sc(cfg).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	if _, out := e.runToExit(t, cfg); out != "mkdir=0" {
		t.Errorf("after a bad SIGHUP the profile in force changed: %q", out)
	}
}

func readHostSysctl(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc/sys", path))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// waitDaemonLog waits until the daemon's log holds want at least n times.
func waitDaemonLog(t *testing.T, d *harness.Daemon, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(d.Log(), want) < n {
		if time.Now().After(deadline) {
			t.Fatalf("daemon log lacks %q after 10s:\n%s", want, d.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// markerHook is a hook program recording "<stage> <container id>" for
// every call, the id read from the state JSON runc gives it on stdin.
const markerHook = `#!/bin/sh
id=$(sed -n 's/.*"id": *"\([0-9a-f]*\)".*/\1/p')
echo "$1 $id" >> "$(dirname "$0")/marker"
`

func TestOCIHooksFromHooksDirs(t *testing.T) {
	harness.CheckLeaks(t)
	dir := t.TempDir()
	hook := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(hook, []byte(markerHook), 0o755); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "marker")
	low, high := filepath.Join(dir, "usr-hooks.d"), filepath.Join(dir, "etc-hooks.d")
	hookFile := func(d, name, when, stage string, stages ...string) {
		t.Helper()
		os.MkdirAll(d, 0o755)
		body := fmt.Sprintf(`{"version":"1.0.0","hook":{"path":%q,"args":["hook.sh",%q],"env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"timeout":10},"when":%s,"stages":[%s]}`,
			hook, stage, when, `"`+strings.Join(stages, `","`)+`"`)
		if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The low directory's always-hook is masked by the high one's
	// annotation hook of the same name.
	hookFile(low, "10-annotated.json", `{"always":true}`, "always", "createRuntime")
	hookFile(high, "10-annotated.json", `{"annotations":{"^floe\\.test/hook$":"^yes$"}}`, "createRuntime", "createRuntime")
	hookFile(high, "11-annotated-poststop.json", `{"annotations":{"^floe\\.test/hook$":"^yes$"}}`, "poststop", "poststop")
	hookFile(high, "20-command.json", `{"commands":["^/bin/sleep$"]}`, "prestart", "prestart")
	if err := os.WriteFile(filepath.Join(high, "30-broken.json"), []byte(`{"version":"1.0.0","hook":`), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newContainerEnvWith(t, containerEnvOptions{ConfigTOML: fmt.Sprintf("[containers]\nhooks_dir = [%q, %q]\n", low, high)})
	if log := e.d.Log(); !strings.Contains(log, "invalid OCI hook file skipped") || !strings.Contains(log, filepath.Join(high, "30-broken.json")) {
		t.Errorf("the broken hook file is not reported:\n%s", log)
	}
	ctx := harness.Ctx(t)
	create := func(name string, ann map[string]string, cmd ...string) string {
		cfg := e.config(name, cmd...)
		cfg.Annotations = ann
		resp, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: cfg, SandboxConfig: e.podCfg})
		if err != nil {
			t.Fatalf("CreateContainer %s: %v", name, err)
		}
		return resp.ContainerId
	}
	both := create("both", map[string]string{"floe.test/hook": "yes"}, "/bin/sleep", "1000")
	// createRuntime and prestart run in `runc create`, before the start.
	if got := readMarker(t, marker); got != fmt.Sprintf("createRuntime %s\nprestart %s", both, both) {
		t.Errorf("after CreateContainer: marker %q", got)
	}
	none := create("none", map[string]string{"floe.test/hook": "no"}, "sh", "-c", "sleep 1000")
	cmdOnly := create("cmd", nil, "/bin/sleep", "1000")
	for _, id := range []string{both, none, cmdOnly} {
		if _, err := e.d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
	}
	want := sortedLines(fmt.Sprintf("createRuntime %s\nprestart %s\nprestart %s", both, both, cmdOnly))
	if got := readMarker(t, marker); got != want {
		t.Errorf("after the starts: marker %q, want %q (nothing for %s)", got, want, none)
	}
	// runc runs poststop when the stopped container is deleted.
	for _, id := range []string{both, none} {
		if _, err := e.d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 0}); err != nil {
			t.Fatalf("StopContainer: %v", err)
		}
		if _, err := e.d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Fatalf("RemoveContainer: %v", err)
		}
	}
	if got := readMarker(t, marker); got != sortedLines(want+"\npoststop "+both) {
		t.Errorf("after stop and remove: marker %q, want a poststop line for %s only", got, both)
	}
}

// readMarker returns the marker's lines sorted: runc runs the stages of
// one step in an order of its own (prestart before createRuntime).
func readMarker(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return sortedLines(strings.TrimSpace(string(data)))
}

func sortedLines(s string) string {
	lines := strings.Split(s, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
