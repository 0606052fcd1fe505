package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/harness"
)

// testPlugins writes CNI plugins for failure tests into a temp dir:
// slowbridge sleeps before delegating ADD to the real bridge plugin, and
// failadd fails every ADD (but accepts DEL, as a plugin must).
func testPlugins(t *testing.T, slowSeconds int) string {
	t.Helper()
	dir := t.TempDir()
	scripts := map[string]string{
		"slowbridge": "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] && sleep " + strconv.Itoa(slowSeconds) + "\nexec /usr/lib/cni/bridge\n",
		"failadd": "#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = ADD ]; then\n" +
			"  echo '{\"cniVersion\":\"1.0.0\",\"code\":100,\"msg\":\"failadd refuses every ADD\"}'\n  exit 1\nfi\nexit 0\n",
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBadRequestsAreInvalidArgumentAndLeaveNothing(t *testing.T) {
	harness.CheckLeaks(t)
	d := harness.StartDaemon(t, harness.Options{})
	ctx := harness.Ctx(t)
	mutate := func(f func(*runtimeapi.PodSandboxConfig)) *runtimeapi.PodSandboxConfig {
		c := podConfig("bad")
		f(c)
		return c
	}
	cases := []struct {
		name  string
		req   *runtimeapi.RunPodSandboxRequest
		field string
	}{
		{"no config", &runtimeapi.RunPodSandboxRequest{}, "config"},
		{"no metadata", &runtimeapi.RunPodSandboxRequest{Config: mutate(func(c *runtimeapi.PodSandboxConfig) { c.Metadata = nil })}, "config.metadata"},
		{"empty name", &runtimeapi.RunPodSandboxRequest{Config: mutate(func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "" })}, "config.metadata.name"},
		{"empty namespace", &runtimeapi.RunPodSandboxRequest{Config: mutate(func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Namespace = "" })}, "config.metadata.namespace"},
		{"relative log dir", &runtimeapi.RunPodSandboxRequest{Config: mutate(func(c *runtimeapi.PodSandboxConfig) { c.LogDirectory = "var/log/pods" })}, "config.log_directory"},
		{"unknown handler", &runtimeapi.RunPodSandboxRequest{Config: podConfig("bad"), RuntimeHandler: "kata"}, "runtime_handler"},
		{"container port 0", &runtimeapi.RunPodSandboxRequest{Config: mutate(func(c *runtimeapi.PodSandboxConfig) {
			c.PortMappings = []*runtimeapi.PortMapping{{HostPort: 8080, ContainerPort: 0}}
		})}, "config.port_mappings[0].container_port"},
		{"host port too big", &runtimeapi.RunPodSandboxRequest{Config: mutate(func(c *runtimeapi.PodSandboxConfig) {
			c.PortMappings = []*runtimeapi.PortMapping{{HostPort: 70000, ContainerPort: 80}}
		})}, "config.port_mappings[0].host_port"},
		{"bad protocol", &runtimeapi.RunPodSandboxRequest{Config: mutate(func(c *runtimeapi.PodSandboxConfig) {
			c.PortMappings = []*runtimeapi.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: 9}}
		})}, "config.port_mappings[0].protocol"},
		{"bad host ip", &runtimeapi.RunPodSandboxRequest{Config: mutate(func(c *runtimeapi.PodSandboxConfig) {
			c.PortMappings = []*runtimeapi.PortMapping{{HostPort: 8080, ContainerPort: 80, HostIp: "not-an-ip"}}
		})}, "config.port_mappings[0].host_ip"},
		{"bad dns server", &runtimeapi.RunPodSandboxRequest{Config: mutate(func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Servers = []string{"dns.example"} })}, "config.dns_config"},
		{"bad bandwidth", &runtimeapi.RunPodSandboxRequest{Config: mutate(func(c *runtimeapi.PodSandboxConfig) {
			c.Annotations = map[string]string{"kubernetes.io/ingress-bandwidth": "fast"}
		})}, "config.annotations[kubernetes.io/ingress-bandwidth]"},
	}
	for _, tc := range cases {
		_, err := d.Runtime.RunPodSandbox(ctx, tc.req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: got %v, want InvalidArgument naming %s", tc.name, err, tc.field)
		}
	}
	for _, rpc := range []func() error{
		func() error { _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{}); return err },
		func() error {
			_, err := d.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{})
			return err
		},
	} {
		if err := rpc(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "pod_sandbox_id") {
			t.Errorf("empty id: %v", err)
		}
	}
	if r, _ := d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); len(r.GetItems()) != 0 {
		t.Errorf("bad requests left sandboxes: %v", r.Items)
	}
	if entries, _ := os.ReadDir(filepath.Join(d.RunDir, "pods")); len(entries) != 0 {
		t.Errorf("bad requests left pod dirs: %v", entries)
	}
}

func TestCNIFailureUndoesEverything(t *testing.T) {
	harness.CheckLeaks(t)
	plugins := testPlugins(t, 0)
	d := harness.StartDaemon(t, harness.Options{ExtraPluginDir: plugins})
	// bridge succeeds (veth, IP) and then a later plugin in the chain
	// fails: floe must DEL so the veth and the IP are released.
	conf := `{"cniVersion":"1.0.0","name":"failchain","plugins":[
 {"type":"bridge","bridge":"` + d.Bridge + `","isGateway":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"` + d.Subnet + `"}]],"dataDir":"` + d.IPAMDir + `"}},
 {"type":"failadd"}]}`
	if err := os.WriteFile(filepath.Join(d.CNIDir, "10-floetest.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	before := harness.Snapshot(t, d.IPAMDir)
	_, err := d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig("cnifail")})
	if err == nil || !strings.Contains(err.Error(), "failadd refuses every ADD") {
		t.Fatalf("RunPodSandbox with a failing plugin: %v", err)
	}
	before.AssertNoLeaks(t)
	if r, _ := d.Runtime.ListPodSandbox(harness.Ctx(t), &runtimeapi.ListPodSandboxRequest{}); len(r.GetItems()) != 0 {
		t.Errorf("failed sandbox is listed: %v", r.Items)
	}
}

func TestNetworkReadyFollowsCNIConfigWithoutRestart(t *testing.T) {
	harness.CheckLeaks(t)
	d := harness.StartDaemon(t, harness.Options{NoCNIConfig: true})
	ctx := harness.Ctx(t)
	cond := func() *runtimeapi.RuntimeCondition {
		resp, err := d.Runtime.Status(ctx, &runtimeapi.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range resp.Status.Conditions {
			if c.Type == runtimeapi.NetworkReady {
				return c
			}
		}
		t.Fatal("no NetworkReady condition")
		return nil
	}
	if c := cond(); c.Status || c.Reason == "" || !strings.Contains(c.Message, d.CNIDir) {
		t.Errorf("NetworkReady without config = %v", c)
	}
	_, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podConfig("nonet")})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "no CNI network configuration") {
		t.Errorf("RunPodSandbox without CNI config: %v", err)
	}
	d.WriteCNIConfig("")
	if c := cond(); !c.Status {
		t.Errorf("NetworkReady after writing a config = %v", c)
	}
	resp, err := d.Runtime.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range resp.Status.Conditions {
		if c.Type == runtimeapi.RuntimeReady && !c.Status {
			t.Errorf("RuntimeReady = %v", c)
		}
	}
	rc, err := d.Runtime.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
	if err != nil || rc.Linux.CgroupDriver != runtimeapi.CgroupDriver_CGROUPFS {
		t.Errorf("RuntimeConfig = %v, %v", rc, err)
	}
	if _, err := d.Runtime.UpdateRuntimeConfig(ctx, &runtimeapi.UpdateRuntimeConfigRequest{RuntimeConfig: &runtimeapi.RuntimeConfig{
		NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "10.244.0.0/24"}}}); err != nil {
		t.Errorf("UpdateRuntimeConfig: %v", err)
	}
	_, err = d.Runtime.UpdateRuntimeConfig(ctx, &runtimeapi.UpdateRuntimeConfigRequest{RuntimeConfig: &runtimeapi.RuntimeConfig{
		NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "10.244.0.0/99"}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "pod_cidr") {
		t.Errorf("bad pod CIDR: %v", err)
	}
}

func TestKill9AndRestartKeepsSandboxesAndLeaksNothing(t *testing.T) {
	harness.CheckLeaks(t)
	d := harness.StartDaemon(t, harness.Options{})
	ctx := harness.Ctx(t)
	resp, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podConfig("survivor")})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.PodSandboxId
	_, info := status2(t, d, id)
	d.Kill9()
	// The pod's namespaces do not depend on the daemon.
	if _, err := os.Stat(info.NetnsPath); err != nil {
		t.Fatalf("netns gone after kill -9: %v", err)
	}
	d.Start()
	st, _ := status2(t, d, id)
	if st.State != runtimeapi.PodSandboxState_SANDBOX_READY || st.GetNetwork().GetIp() == "" {
		t.Errorf("after restart: %v", st)
	}
	// The name is still reserved after the restart.
	cfg := podConfig("survivor")
	cfg.Metadata = st.Metadata
	if _, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("reservation lost across restart: %v", err)
	}
	if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	harness.Snapshot(t).AssertNoLeaks(t, d.IPAMDir)
}

func TestKill9DuringCreationIsUndoneOnRestart(t *testing.T) {
	harness.CheckLeaks(t)
	plugins := testPlugins(t, 3)
	d := harness.StartDaemon(t, harness.Options{ExtraPluginDir: plugins, PluginType: "slowbridge"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podConfig("halfmade")})
	// Wait until the creation is inside CNI ADD: the netns is pinned.
	deadline := time.Now().Add(10 * time.Second)
	for !netnsWithPrefix("itest_halfmade-") {
		if time.Now().After(deadline) {
			t.Fatalf("creation never reached CNI ADD\n%s", d.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.Kill9()
	d.Start()
	r, err := d.Runtime.ListPodSandbox(harness.Ctx(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Items) != 0 {
		t.Errorf("half-made sandbox listed after restart: %v", r.Items)
	}
	if netnsWithPrefix("itest_halfmade-") {
		t.Errorf("half-made sandbox's netns survived the restart")
	}
	if !strings.Contains(d.Log(), "undoing a sandbox whose creation was interrupted") {
		t.Errorf("restart did not undo the interrupted creation:\n%s", d.Log())
	}
	// Give an orphaned plugin (if any had escaped) time to show up.
	time.Sleep(4 * time.Second)
	harness.Snapshot(t).AssertNoLeaks(t, d.IPAMDir)
}

func netnsWithPrefix(prefix string) bool {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			return true
		}
	}
	return false
}

func TestRetryAfterDeadlineGetsTheSameSandbox(t *testing.T) {
	harness.CheckLeaks(t)
	plugins := testPlugins(t, 3)
	d := harness.StartDaemon(t, harness.Options{ExtraPluginDir: plugins, PluginType: "slowbridge"})
	cfg := podConfig("slow")

	// 1. The caller gives up while the creation runs; the retry, sent
	// while it still runs, waits for it and gets the sandbox.
	short, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err := d.Runtime.RunPodSandbox(short, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("first call: %v", err)
	}
	resp, err := d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("retry during creation: %v", err)
	}
	first := resp.PodSandboxId

	// 2. The caller gives up and the creation finishes before the retry:
	// the retry gets the finished sandbox, not "name is reserved".
	cfg2 := podConfig("slow2")
	short, cancel = context.WithTimeout(context.Background(), time.Second)
	_, err = d.Runtime.RunPodSandbox(short, &runtimeapi.RunPodSandboxRequest{Config: cfg2})
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("second pod first call: %v", err)
	}
	time.Sleep(4 * time.Second)
	list, _ := d.Runtime.ListPodSandbox(harness.Ctx(t), &runtimeapi.ListPodSandboxRequest{})
	if len(list.GetItems()) != 1 {
		t.Errorf("an unclaimed sandbox must not be listed; list has %d", len(list.GetItems()))
	}
	resp, err = d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg2})
	if err != nil {
		t.Fatalf("retry after creation finished: %v", err)
	}
	second := resp.PodSandboxId
	// The shared object table logs these for both kinds of record.
	if !strings.Contains(d.Log(), `msg="handed an object finished after its caller's deadline to the retry" kind="pod sandbox"`) ||
		!strings.Contains(d.Log(), `msg="retry of a creation in progress: waiting for it" kind="pod sandbox"`) {
		t.Errorf("the retries did not take the expected paths:\n%s", d.Log())
	}
	// Once claimed, the same request again is a real duplicate.
	_, err = d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg2})
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), second) {
		t.Errorf("duplicate after claim: %v", err)
	}
	for _, id := range []string{first, second} {
		if _, err := d.Runtime.RemovePodSandbox(harness.Ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
	}
	harness.Snapshot(t).AssertNoLeaks(t, d.IPAMDir)
}

func TestAbandonedSandboxIsRemovedAfterGrace(t *testing.T) {
	harness.CheckLeaks(t)
	plugins := testPlugins(t, 2)
	d := harness.StartDaemon(t, harness.Options{ExtraPluginDir: plugins, PluginType: "slowbridge",
		ConfigTOML: "[sandbox]\nabandoned_grace = \"2s\"\n"})
	short, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err := d.Runtime.RunPodSandbox(short, &runtimeapi.RunPodSandboxRequest{Config: podConfig("abandoned")})
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("first call: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if !netnsWithPrefix("itest_abandoned-") && strings.Contains(d.Log(), `msg="removing an object no retry claimed" kind="pod sandbox"`) &&
			strings.Contains(d.Log(), "sandbox removed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("abandoned sandbox not removed\n%s", d.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	harness.Snapshot(t).AssertNoLeaks(t, d.IPAMDir)
}

func TestDaemonsSideBySideAndStateDirLock(t *testing.T) {
	a := harness.StartDaemon(t, harness.Options{})
	b := harness.StartDaemon(t, harness.Options{})
	for _, d := range []*harness.Daemon{a, b} {
		v, err := d.Runtime.Version(harness.Ctx(t), &runtimeapi.VersionRequest{})
		if err != nil || v.RuntimeName != "floe" || v.RuntimeApiVersion != "v1" {
			t.Errorf("Version = %v, %v", v, err)
		}
	}
	// A second daemon on a's state dir is refused, naming the reason.
	out, err := exec.Command(harness.FloeBinary(t), "serve", "--config", filepath.Join(a.Dir, "floe.toml"),
		"--state-dir", a.StateDir, "--socket", filepath.Join(t.TempDir(), "x.sock"), "--run-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by another floe daemon") {
		t.Errorf("second daemon on the same state dir: %v\n%s", err, out)
	}
	// And one on a's socket is refused too.
	out, err = exec.Command(harness.FloeBinary(t), "serve", "--config", filepath.Join(a.Dir, "floe.toml"),
		"--state-dir", t.TempDir(), "--socket", a.Socket, "--run-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "served by another process") {
		t.Errorf("second daemon on the same socket: %v\n%s", err, out)
	}
	// SIGTERM: clean exit, the socket is removed, and pods stay.
	resp, err := a.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig("stays")})
	if err != nil {
		t.Fatal(err)
	}
	_, info := status2(t, a, resp.PodSandboxId)
	a.Stop()
	if _, err := os.Stat(info.NetnsPath); err != nil {
		t.Errorf("SIGTERM took the pod's netns: %v", err)
	}
	if _, err := os.Stat(a.Socket); !os.IsNotExist(err) {
		t.Errorf("socket left after clean shutdown: %v", err)
	}
	a.Start()
	st, _ := status2(t, a, resp.PodSandboxId)
	if st.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("after SIGTERM and restart: %v", st.State)
	}
}

func TestConfigErrorsStopStartupNamingFileAndKey(t *testing.T) {
	harness.RequireRoot(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "floe.toml")
	os.WriteFile(path, []byte("[network]\ncni_confdir = \"/etc/cni\"\n"), 0o644)
	out, err := exec.Command(harness.FloeBinary(t), "serve", "--config", path, "--state-dir", dir+"/s", "--socket", dir+"/s.sock").CombinedOutput()
	if err == nil || !strings.Contains(string(out), path) || !strings.Contains(string(out), `unknown key "network.cni_confdir"`) {
		t.Errorf("unknown key: %v\n%s", err, out)
	}
	os.WriteFile(path, nil, 0o644)
	os.MkdirAll(filepath.Join(dir, "floe.d"), 0o755)
	dropIn := filepath.Join(dir, "floe.d", "50-driver.toml")
	os.WriteFile(dropIn, []byte("cgroup_manager = \"cgroupv2\"\n"), 0o644)
	out, err = exec.Command(harness.FloeBinary(t), "serve", "--config", path).CombinedOutput()
	if err == nil || !strings.Contains(string(out), dropIn) || !strings.Contains(string(out), `use "cgroupfs" or "systemd"`) {
		t.Errorf("bad drop-in value: %v\n%s", err, out)
	}
	os.Remove(dropIn)
	out, err = exec.Command(harness.FloeBinary(t), "serve", "--config", path, "--log-level", "loud").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--log-level") {
		t.Errorf("bad flag value: %v\n%s", err, out)
	}
	// floe config prints a file that floe accepts back.
	rendered, err := exec.Command(harness.FloeBinary(t), "config", "--config", path, "--socket", "/tmp/x.sock").Output()
	if err != nil || !strings.Contains(string(rendered), "socket = '/tmp/x.sock'") {
		t.Fatalf("floe config: %v\n%s", err, rendered)
	}
	os.WriteFile(path, rendered, 0o644)
	if out, err := exec.Command(harness.FloeBinary(t), "config", "--config", path).CombinedOutput(); err != nil {
		t.Errorf("rendered config does not load: %v\n%s", err, out)
	}
}

func TestPortMappingsAndKubernetesArgsReachCNI(t *testing.T) {
	harness.CheckLeaks(t)
	plugins := t.TempDir()
	argsFile := filepath.Join(plugins, "args")
	script := "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] && echo \"$CNI_ARGS\" > " + argsFile + "\nexec /usr/lib/cni/bridge\n"
	if err := os.WriteFile(filepath.Join(plugins, "recordbridge"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	d := harness.StartDaemon(t, harness.Options{ExtraPluginDir: plugins, PluginType: "recordbridge"})
	ctx := harness.Ctx(t)
	cfg := podConfig("ports")
	hostPort := int32(20000 + time.Now().UnixNano()%20000)
	cfg.PortMappings = []*runtimeapi.PortMapping{{HostPort: hostPort, ContainerPort: 8080, Protocol: runtimeapi.Protocol_TCP}}
	resp, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := status2(t, d, resp.PodSandboxId)
	args, _ := os.ReadFile(argsFile)
	for _, want := range []string{"IgnoreUnknown=1", "K8S_POD_NAMESPACE=itest", "K8S_POD_NAME=ports",
		"K8S_POD_INFRA_CONTAINER_ID=" + resp.PodSandboxId, "K8S_POD_UID=" + cfg.Metadata.Uid} {
		if !strings.Contains(string(args), want) {
			t.Errorf("CNI_ARGS %q lacks %s", args, want)
		}
	}
	dnat := "--to-destination " + st.Network.Ip + ":8080"
	rules := harness.MustRun(t, "iptables-save", "-t", "nat")
	if !strings.Contains(rules, "--dport "+strconv.Itoa(int(hostPort))) || !strings.Contains(rules, dnat) {
		t.Errorf("portmap rules for host port %d -> %s missing:\n%s", hostPort, dnat, rules)
	}
	if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	if rules := harness.MustRun(t, "iptables-save", "-t", "nat"); strings.Contains(rules, dnat) {
		t.Errorf("portmap rules survive StopPodSandbox")
	}
}
