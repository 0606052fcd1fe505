// Package integration drives real floe daemons through the CRI client,
// exactly as the kubelet does, against real CNI plugins, namespaces and
// mounts. The tests need root.
package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/harness"
)

func podConfig(name string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "itest", Uid: "uid-" + name + "-" + harness.Short(), Attempt: 0},
		Hostname: name + "-host",
		Labels:   map[string]string{"app": name, "tier": "test"},
		DnsConfig: &runtimeapi.DNSConfig{
			Servers:  []string{"10.96.0.10", "10.96.0.11"},
			Searches: []string{"itest.svc.cluster.local", "svc.cluster.local"},
			Options:  []string{"ndots:5"},
		},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
				Network: runtimeapi.NamespaceMode_POD, Ipc: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER,
			}},
		},
	}
}

type sandboxInfo struct {
	NetnsName string          `json:"netnsName"`
	NetnsPath string          `json:"netnsPath"`
	UTSPath   string          `json:"utsPath"`
	IPCPath   string          `json:"ipcPath"`
	CNIResult json.RawMessage `json:"cniResult"`
	Files     struct {
		ResolvConf string
		Hostname   string
		Shm        string
	} `json:"files"`
}

func status2(t *testing.T, d *harness.Daemon, id string) (*runtimeapi.PodSandboxStatus, sandboxInfo) {
	t.Helper()
	resp, err := d.Runtime.PodSandboxStatus(harness.Ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		t.Fatalf("PodSandboxStatus: %v", err)
	}
	var info sandboxInfo
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
		t.Fatalf("verbose info is not JSON: %v: %q", err, resp.Info["info"])
	}
	return resp.Status, info
}

func TestSandboxLifecycleWithRealCNI(t *testing.T) {
	harness.CheckLeaks(t)
	d := harness.StartDaemon(t, harness.Options{})
	leaks := harness.Snapshot(t, d.IPAMDir)
	ctx := harness.Ctx(t)
	cfg := podConfig("web")
	resp, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	id := resp.PodSandboxId
	if len(id) != 64 {
		t.Fatalf("id %q is not 64 hex", id)
	}

	st, info := status2(t, d, id[:12]) // any unique prefix works
	if st.Id != id || st.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("status = %v", st)
	}
	_, subnet, _ := net.ParseCIDR(d.Subnet)
	ip := net.ParseIP(st.GetNetwork().GetIp())
	if ip == nil || !subnet.Contains(ip) {
		t.Fatalf("pod IP %q is not in %s", st.GetNetwork().GetIp(), d.Subnet)
	}
	if len(info.CNIResult) == 0 {
		t.Errorf("verbose info lacks the CNI result")
	}

	// The host reaches the pod over the bridge.
	harness.MustRun(t, "ping", "-c", "1", "-W", "3", ip.String())

	// The netns is pinned under /run/netns with a readable name.
	if !strings.HasPrefix(info.NetnsName, "itest_web-") || info.NetnsPath != "/run/netns/"+info.NetnsName {
		t.Errorf("netns name %q path %q", info.NetnsName, info.NetnsPath)
	}
	if out := harness.MustRun(t, "ip", "netns", "list"); !strings.Contains(out, info.NetnsName) {
		t.Errorf("ip netns list does not show %s:\n%s", info.NetnsName, out)
	}
	// The host veth names the pod's netns as its peer's namespace.
	links := harness.MustRun(t, "ip", "-d", "link", "show", "master", d.Bridge)
	if !strings.Contains(links, "link-netns "+info.NetnsName) {
		t.Errorf("no host veth shows link-netns %s:\n%s", info.NetnsName, links)
	}
	// Loopback is up inside the pod.
	lo := harness.MustRun(t, "ip", "netns", "exec", info.NetnsName, "ip", "-o", "link", "show", "lo")
	if !strings.Contains(lo, "UP") {
		t.Errorf("pod loopback is not up: %s", lo)
	}
	// Hostname is set in the pinned UTS namespace.
	if h := harness.MustRun(t, "nsenter", "--uts="+info.UTSPath, "hostname"); h != "web-host" {
		t.Errorf("hostname in pod UTS ns = %q", h)
	}
	// IPC namespace is pinned and differs from the host's.
	hostIPC, _ := os.Readlink("/proc/self/ns/ipc")
	podIPC := harness.MustRun(t, "nsenter", "--ipc="+info.IPCPath, "readlink", "/proc/self/ns/ipc")
	if podIPC == hostIPC || !strings.HasPrefix(podIPC, "ipc:") {
		t.Errorf("pod ipc ns %q vs host %q", podIPC, hostIPC)
	}
	// DNS and hostname files.
	resolv, _ := os.ReadFile(info.Files.ResolvConf)
	want := "search itest.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver 10.96.0.11\noptions ndots:5\n"
	if string(resolv) != want {
		t.Errorf("resolv.conf = %q, want %q", resolv, want)
	}
	if hn, _ := os.ReadFile(info.Files.Hostname); string(hn) != "web-host\n" {
		t.Errorf("hostname file = %q", hn)
	}
	if out := harness.MustRun(t, "findmnt", "-n", "-o", "FSTYPE,OPTIONS", info.Files.Shm); !strings.Contains(out, "tmpfs") || !strings.Contains(out, "size=65536k") {
		t.Errorf("shm mount = %q", out)
	}

	// floe pins namespaces on throwaway threads: none of its own threads
	// may stay behind in the pod's namespaces.
	for _, kind := range []string{"net", "ipc", "uts"} {
		host, _ := os.Readlink("/proc/self/ns/" + kind)
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/ns/%s", d.PID(), kind))
		for _, task := range tasks {
			if ns, _ := os.Readlink(task); ns != host {
				t.Errorf("daemon thread %s is in %s, not the host's %s", task, ns, host)
			}
		}
	}

	// Lists and filters.
	list := func(f *runtimeapi.PodSandboxFilter) int {
		r, err := d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: f})
		if err != nil {
			t.Fatalf("ListPodSandbox: %v", err)
		}
		return len(r.Items)
	}
	if n := list(nil); n != 1 {
		t.Errorf("list all = %d", n)
	}
	if n := list(&runtimeapi.PodSandboxFilter{Id: id[:6]}); n != 1 {
		t.Errorf("list by id prefix = %d", n)
	}
	if n := list(&runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "web"}}); n != 1 {
		t.Errorf("list by label = %d", n)
	}
	if n := list(&runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "other"}}); n != 0 {
		t.Errorf("list by wrong label = %d", n)
	}
	notReady := &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}
	if n := list(&runtimeapi.PodSandboxFilter{State: notReady}); n != 0 {
		t.Errorf("list not ready = %d", n)
	}

	// Pod-level resources the kubelet applied are recorded with the pod.
	if _, err := d.Runtime.UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: id,
		Resources: &runtimeapi.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 256 << 20}}); err != nil {
		t.Fatalf("UpdatePodSandboxResources: %v", err)
	}
	if resp, err := d.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true}); err != nil ||
		!strings.Contains(resp.Info["info"], `"memory_limit_in_bytes":268435456`) {
		t.Errorf("resources not recorded: %v %v", resp.GetInfo(), err)
	}
	if _, err := d.Runtime.UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("UpdatePodSandboxResources on unknown pod: %v", err)
	}

	// The same name, namespace, uid and attempt is refused, naming the id.
	_, err = d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), id) {
		t.Errorf("duplicate RunPodSandbox: %v", err)
	}

	// Stop releases the network; both calls succeed.
	for i := 0; i < 2; i++ {
		if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("StopPodSandbox #%d: %v", i+1, err)
		}
	}
	st, _ = status2(t, d, id)
	if st.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY || st.Network != nil {
		t.Errorf("after stop: state %v network %v", st.State, st.Network)
	}
	if n := list(&runtimeapi.PodSandboxFilter{State: notReady}); n != 1 {
		t.Errorf("list not ready after stop = %d", n)
	}
	if _, err := os.Stat(info.NetnsPath); !os.IsNotExist(err) {
		t.Errorf("netns file still there after stop: %v", err)
	}
	for i := 0; i < 2; i++ {
		if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("RemovePodSandbox #%d: %v", i+1, err)
		}
	}
	if _, err := d.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id}); status.Code(err) != codes.NotFound {
		t.Errorf("status after remove: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.RunDir, "pods", id)); !os.IsNotExist(err) {
		t.Errorf("pod run dir left behind: %v", err)
	}
	leaks.AssertNoLeaks(t)
}

func TestRemoveRunningSandboxStopsItFirst(t *testing.T) {
	harness.CheckLeaks(t)
	d := harness.StartDaemon(t, harness.Options{})
	ctx := harness.Ctx(t)
	resp, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podConfig("rm")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
		t.Fatalf("remove running sandbox: %v", err)
	}
	harness.Snapshot(t).AssertNoLeaks(t, d.IPAMDir)
	// Unknown ids: Stop and Remove succeed, Status is NotFound.
	unknown := strings.Repeat("ab", 32)
	if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: unknown}); err != nil {
		t.Errorf("stop unknown: %v", err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: unknown}); err != nil {
		t.Errorf("remove unknown: %v", err)
	}
	if _, err := d.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: unknown}); status.Code(err) != codes.NotFound {
		t.Errorf("status unknown: %v", err)
	}
}

func TestHostNetworkPodGetsNoCNI(t *testing.T) {
	harness.CheckLeaks(t)
	d := harness.StartDaemon(t, harness.Options{})
	ctx := harness.Ctx(t)
	cfg := podConfig("hostnet")
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	cfg.Linux.SecurityContext.NamespaceOptions.Ipc = runtimeapi.NamespaceMode_NODE
	resp, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	st, info := status2(t, d, resp.PodSandboxId)
	if st.Network != nil || info.NetnsPath != "" || info.IPCPath != "" || len(info.CNIResult) != 0 {
		t.Errorf("host-network pod got network state: %v %+v", st.Network, info)
	}
	if st.Linux.Namespaces.Options.Network != runtimeapi.NamespaceMode_NODE {
		t.Errorf("namespace options not reported: %v", st.Linux.Namespaces.Options)
	}
	if _, err := os.Stat(d.IPAMDir); !os.IsNotExist(err) {
		t.Errorf("CNI ran for a host-network pod (IPAM dir exists)")
	}
}

func TestStreamPodSandboxesMatchesList(t *testing.T) {
	harness.CheckLeaks(t)
	d := harness.StartDaemon(t, harness.Options{})
	ctx := harness.Ctx(t)
	for _, name := range []string{"s1", "s2", "s3"} {
		if _, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podConfig(name)}); err != nil {
			t.Fatal(err)
		}
	}
	collect := func(f *runtimeapi.PodSandboxFilter) []string {
		stream, err := d.Runtime.StreamPodSandboxes(ctx, &runtimeapi.StreamPodSandboxesRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for {
			resp, err := stream.Recv()
			if err != nil {
				if err.Error() != "EOF" && !strings.Contains(err.Error(), "EOF") {
					t.Fatalf("stream: %v", err)
				}
				return ids
			}
			for _, sb := range resp.PodSandboxes {
				ids = append(ids, sb.Id)
			}
		}
	}
	all := collect(nil)
	list, _ := d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if len(all) != 3 || len(list.Items) != 3 {
		t.Fatalf("stream %d items, list %d", len(all), len(list.Items))
	}
	for i := range all {
		if all[i] != list.Items[i].Id {
			t.Errorf("stream and list differ at %d", i)
		}
	}
	if got := collect(&runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "s2"}}); len(got) != 1 {
		t.Errorf("filtered stream = %v", got)
	}
}
