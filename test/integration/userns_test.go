package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/inspect"
	"github.com/floe-cri/floe/test/harness"
)

// usernsHostID is where the test pods' ids start on the host: above any
// real user of the machine, below the kernel's overflow ids.
const usernsHostID = 1 << 20

func usernsOptions(host uint32) *runtimeapi.UserNamespace {
	m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: host, Length: 65536}}
	return &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}
}

// A pod with hostUsers: false as the kubelet asks for it: its root is an
// unprivileged host uid, files of the image, the pod's own files and
// volumes show as root's inside, the pod network works (CNI set up a veth
// in a netns the pod's user namespace owns) and pod sysctls apply.
func TestUserNamespacePod(t *testing.T) {
	harness.CheckLeaks(t)
	const host = usernsHostID
	volume := t.TempDir() // owned by host root, like an emptyDir or hostPath
	if err := os.WriteFile(filepath.Join(volume, "seed"), []byte("seed"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newContainerEnvWith(t, containerEnvOptions{Pod: func(p *runtimeapi.PodSandboxConfig) {
		p.Linux.SecurityContext.NamespaceOptions.UsernsOptions = usernsOptions(host)
		p.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "81"}
	}})
	ctx := harness.Ctx(t)
	t.Cleanup(func() {
		e.d.Runtime.StopPodSandbox(context.Background(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.podID})
		e.d.Runtime.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.podID})
	})
	withUserns := func(cfg *runtimeapi.ContainerConfig) *runtimeapi.ContainerConfig {
		// The test image's default user is 1000; the pod's root is the
		// point here.
		e.sc(cfg).RunAsUser = i64(0)
		e.sc(cfg).NamespaceOptions = &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER, UsernsOptions: usernsOptions(host)}
		return cfg
	}
	wantMap := fmt.Sprintf("0 %d 65536", host)

	// The kubelet's container: the pod's mapping, seen from inside.
	if _, out := e.runToExit(t, withUserns(e.config("maps", "cat", "/proc/self/uid_map", "/proc/self/gid_map"))); strings.Join(strings.Fields(out), " ") != wantMap+" "+wantMap {
		t.Errorf("uid_map/gid_map inside: %q, want %q twice", out, wantMap)
	}

	// From the host: the container's root is host uid `host`.
	id := e.run(t, withUserns(e.config("sleeper", "sleep", "1000")))
	cpid := containerPid(t, e, id)
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", cpid)); err != nil || strings.Join(strings.Fields(string(b)), " ") != wantMap {
		t.Errorf("host /proc/%d/uid_map: %q %v, want %q", cpid, b, err, wantMap)
	}
	if uid := procUID(t, cpid); uid != fmt.Sprint(host) {
		t.Errorf("container root runs as host uid %s, want %d", uid, host)
	}

	// Ownership: image files, pod files and a volume show as root's; root
	// writes to the volume land as host root's on disk, and to the rootfs.
	cfg := withUserns(e.config("owners", "sh", "-c",
		"stat -c '%n %u:%g' / /etc/passwd /etc/resolv.conf /etc/hostname /etc/hosts /dev/shm /data /data/seed; "+
			"touch /data/written /newfile /dev/shm/x && echo writes-ok; grep -c nameserver /etc/resolv.conf"))
	cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: volume,
		UidMappings: usernsOptions(host).Uids, GidMappings: usernsOptions(host).Gids}}
	_, out := e.runToExit(t, cfg)
	for _, want := range []string{"/ 0:0", "/etc/passwd 0:0", "/etc/resolv.conf 0:0", "/etc/hostname 0:0", "/etc/hosts 0:0", "/dev/shm 0:0", "/data 0:0", "/data/seed 0:0", "writes-ok", "\n2"} {
		if !strings.Contains(out, want) {
			t.Errorf("owners: %q lacks %q", out, want)
		}
	}
	if st, err := os.Stat(filepath.Join(volume, "written")); err != nil || st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("file the pod's root wrote to the volume: %v %+v, want host uid 0", err, st)
	}

	// Pod sysctl, written by runc inside the pod's network namespace.
	if _, out := e.runToExit(t, withUserns(e.config("sysctl", "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"))); out != "81" {
		t.Errorf("pod sysctl: %q", out)
	}
	// The default ping_group_range, narrowed to the 65536 gids mapped.
	if _, out := e.runToExit(t, withUserns(e.config("ping-range", "cat", "/proc/sys/net/ipv4/ping_group_range"))); out != "0\t65535" {
		t.Errorf("default ping_group_range in the pod's user namespace: %q", out)
	}

	// Network: the pod's IP answers the host.
	ps, err := e.d.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: e.podID})
	if err != nil {
		t.Fatal(err)
	}
	ip := ps.GetStatus().GetNetwork().GetIp()
	if ip == "" {
		t.Fatal("pod has no IP")
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(pctx, "ping", "-c", "1", "-W", "3", ip).CombinedOutput(); err != nil {
		t.Errorf("ping %s from the host: %v %s", ip, err, out)
	}
}

// A pod that shares its PID namespace in a user namespace: its init (and
// so the PID namespace) lives in the pod's user namespace.
func TestUserNamespacePodSharedPID(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnvWith(t, containerEnvOptions{Pod: func(p *runtimeapi.PodSandboxConfig) {
		p.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
		p.Linux.SecurityContext.NamespaceOptions.UsernsOptions = usernsOptions(usernsHostID + 65536)
	}})
	t.Cleanup(func() {
		e.d.Runtime.StopPodSandbox(context.Background(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.podID})
		e.d.Runtime.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.podID})
	})
	cfg := e.config("shared", "sh", "-c", "cat /proc/self/uid_map; cat /proc/1/cmdline | tr '\\0' ' '")
	e.sc(cfg).NamespaceOptions = &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD, UsernsOptions: usernsOptions(usernsHostID + 65536)}
	_, out := e.runToExit(t, cfg)
	if !strings.Contains(strings.Join(strings.Fields(out), " "), fmt.Sprintf("0 %d 65536", usernsHostID+65536)) || !strings.Contains(out, "floe-pod-init") {
		t.Errorf("shared PID namespace in a user namespace: %q", out)
	}
}

// Requests floe cannot run are InvalidArgument naming the field, and
// leave nothing behind (CheckLeaks, and no sandbox listed).
func TestUserNamespaceBadInput(t *testing.T) {
	harness.CheckLeaks(t)
	d := harness.StartDaemon(t, harness.Options{})
	ctx := harness.Ctx(t)
	two := []*runtimeapi.IDMapping{{HostId: 1000, Length: 100000}, {HostId: 2000, Length: 100000}}
	unmapped := []*runtimeapi.IDMapping{{ContainerId: 1, HostId: 1000, Length: 100000}}
	for _, tc := range []struct {
		name  string
		u     *runtimeapi.UserNamespace
		field string
	}{
		{"CONTAINER", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}, "userns_options.mode"},
		{"TARGET", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_TARGET}, "userns_options.mode"},
		{"two mappings", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: two, Gids: two}, "userns_options.uids"},
		{"id 0 unmapped", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: unmapped, Gids: unmapped}, "userns_options.uids[0].container_id"},
	} {
		cfg := podConfig("bad-userns")
		cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = tc.u
		_, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want InvalidArgument naming %s", tc.name, err, tc.field)
		}
	}
	cfg := podConfig("bad-userns-hostnet")
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = usernsOptions(usernsHostID)
	if _, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "namespace_options.network") {
		t.Errorf("host network with a pod user namespace: %v", err)
	}
	list, err := d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(list.Items) != 0 {
		t.Errorf("sandboxes after refused requests: %v %v", list, err)
	}
	st, err := d.Runtime.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range st.RuntimeHandlers {
		if !h.GetFeatures().GetUserNamespaces() {
			t.Errorf("handler %q does not report user namespaces", h.Name)
		}
	}
}

func procUID(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			return strings.Fields(v)[0]
		}
	}
	return ""
}

// Pods of a handler that allows io.kubernetes.cri-o.userns-mode get
// their ids from the configured subordinate ranges: each pod its own
// range, the same after a restart of floe (the records say which are
// taken), a refusal naming the annotation when none is left, and a
// removed pod's range handed out again.
func TestUserNamespaceAutoPods(t *testing.T) {
	harness.CheckLeaks(t)
	// Clear of the fixed mappings other tests use (usernsHostID...).
	const base = 4 * usernsHostID
	dir := t.TempDir()
	subuid, subgid := filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid")
	// Room for one default-sized pod (65536) and two of 4096.
	ranges := fmt.Sprintf("someone:%d:65536\ncontainers:%d:%d\n", base-65536, base, 65536+2*4096)
	for _, p := range []string{subuid, subgid} {
		if err := os.WriteFile(p, []byte(ranges), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const ann = "io.kubernetes.cri-o.userns-mode"
	toml := fmt.Sprintf("[user_namespaces]\nsubuid_file = %q\nsubgid_file = %q\n[runtimes.runc]\nallowed_annotations = [%q]\n", subuid, subgid, ann)
	e := newContainerEnvWith(t, containerEnvOptions{ConfigTOML: toml, Pod: func(p *runtimeapi.PodSandboxConfig) {
		p.Annotations = map[string]string{ann: "auto"}
	}})
	ctx := harness.Ctx(t)
	pods := []string{e.podID}
	t.Cleanup(func() {
		for _, id := range pods {
			e.d.Runtime.StopPodSandbox(context.Background(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
			e.d.Runtime.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
		}
	})
	// newPod runs a pod asking for mode and returns an env for it, or the
	// RunPodSandbox error.
	newPod := func(name, mode string) (*containerEnv, error) {
		cfg := podConfig(name)
		cfg.LogDirectory = e.logDir
		cfg.Annotations = map[string]string{ann: mode}
		resp, err := e.d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
		if err != nil {
			return nil, err
		}
		pods = append(pods, resp.PodSandboxId)
		pe := *e
		pe.podID, pe.podCfg = resp.PodSandboxId, cfg
		return &pe, nil
	}
	// The kubelet sends no userns_options for such a pod's containers:
	// they join the pod's user namespace, running as its root.
	uidMap := func(pe *containerEnv, name string) string {
		cfg := pe.config(name, "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c %u:%g / /etc/hostname")
		pe.sc(cfg).RunAsUser = i64(0)
		_, out := pe.runToExit(t, cfg)
		return strings.Join(strings.Fields(out), " ")
	}
	want := func(host, size int) string {
		return fmt.Sprintf("0 %d %d 0 %d %d 0 0:0 0:0", host, size, host, size)
	}

	// /info says where the ids come from and how many there are.
	in, err := inspect.NewClient(e.d.InspectSocket).Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a := in.AutoUserNamespaces; a == nil || !a.Available || a.UIDs != 65536+2*4096 || !strings.Contains(a.Source, subuid) {
		t.Errorf("/info autoUserNamespaces: %+v", a)
	}
	if got := uidMap(e, "first"); got != want(base, 65536) {
		t.Errorf("pod 1 (auto): %q, want %q", got, want(base, 65536))
	}
	// From the host, its root is the first subordinate uid.
	sleeper := e.run(t, e.config("sleeper", "sleep", "1000"))
	if uid := procUID(t, containerPid(t, e, sleeper)); uid != fmt.Sprint(base+1000) {
		t.Errorf("pod 1's uid 1000 runs as host uid %s, want %d", uid, base+1000)
	}
	p2, err := newPod("auto2", "auto:size=4096")
	if err != nil {
		t.Fatalf("pod 2: %v", err)
	}
	if got := uidMap(p2, "second"); got != want(base+65536, 4096) {
		t.Errorf("pod 2 (auto:size=4096): %q, want %q", got, want(base+65536, 4096))
	}
	// No room for another default-sized pod: refused, naming the
	// annotation, and nothing made.
	if _, err := newPod("auto3", "auto"); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), ann) {
		t.Errorf("pod 3 past the end of the ranges: %v, want FailedPrecondition naming %s", err, ann)
	}
	if n := len(listPods(t, e.d)); n != 2 {
		t.Errorf("%d pods listed after the refusal, want 2", n)
	}

	// A restarted floe knows which ids its pods hold.
	e.d.StopLeavingContainers()
	e.d.Start()
	p4, err := newPod("auto4", "auto:size=4096")
	if err != nil {
		t.Fatalf("pod 4 after a restart: %v", err)
	}
	if got := uidMap(p4, "fourth"); got != want(base+65536+4096, 4096) {
		t.Errorf("pod 4 after a restart: %q, want %q", got, want(base+65536+4096, 4096))
	}
	// Pod 2's ids are free once it is removed.
	if _, err := e.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p2.podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p2.podID}); err != nil {
		t.Fatal(err)
	}
	p5, err := newPod("auto5", "auto:size=4096")
	if err != nil {
		t.Fatalf("pod 5 after pod 2's removal: %v", err)
	}
	if got := uidMap(p5, "fifth"); got != want(base+65536, 4096) {
		t.Errorf("pod 5 in pod 2's freed range: %q, want %q", got, want(base+65536, 4096))
	}
}
