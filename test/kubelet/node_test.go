package kubelet

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/floe-cri/floe/test/harness"
	"golang.org/x/sys/unix"
)

// kubeletBinary finds the kubelet `make kubelet` built: $FLOE_KUBELET, or
// kubelet-<version>/kubelet in the cache (KUBELET_CACHE, default
// /var/cache/floe) for the version hack/kubelet/go.mod pins. Without it the
// test skips, except in CI (CI=true), where a missing kubelet is a failure.
func kubeletBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv("FLOE_KUBELET")
	if path == "" {
		version, err := pinnedKubeletVersion()
		if err != nil {
			t.Fatal(err)
		}
		cache := os.Getenv("KUBELET_CACHE")
		if cache == "" {
			cache = "/var/cache/floe"
		}
		path = filepath.Join(cache, "kubelet-"+version, "kubelet")
	}
	if st, err := os.Stat(path); err != nil || st.Mode()&0o111 == 0 {
		msg := fmt.Sprintf("no kubelet binary at %s: build it with `make kubelet` (hack/build-kubelet.sh, ~8 min once)", path)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// pinnedKubeletVersion reads the k8s.io/kubernetes version from
// hack/kubelet/go.mod, the module hack/build-kubelet.sh builds.
func pinnedKubeletVersion() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	gomod := filepath.Join(filepath.Dir(file), "..", "..", "hack", "kubelet", "go.mod")
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", fmt.Errorf("read kubelet module: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && f[0] == "k8s.io/kubernetes" && strings.HasPrefix(f[1], "v") {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("%s requires no k8s.io/kubernetes version", gomod)
}

// The sysctls the kubelet checks at start with protectKernelDefaults (it
// would otherwise write them host-wide). Those that differ on the host are
// bind-mounted fakes inside the kubelet's own mount namespace.
var kubeletSysctls = []struct{ key, value string }{
	{"vm/overcommit_memory", "1"},
	{"vm/panic_on_oom", "0"},
	{"kernel/panic", "10"},
	{"kernel/panic_on_oops", "1"},
	{"kernel/keys/root_maxkeys", "1000000"},
	{"kernel/keys/root_maxbytes", "25000000"},
}

// Host paths the kubelet writes whatever its --root-dir. The kubelet gets
// tmpfs over /var/log and /var/lib in its own mount namespace, so none of
// them may appear on the host; the test checks that, and removes them if
// they did appear.
var kubeletHostPaths = []string{"/var/lib/kubelet", "/var/log/containers", "/var/log/pods"}

// node is one standalone kubelet with a private root dir, static pod dir,
// pod log dir and cgroup root.
type node struct {
	t          *testing.T
	bin        string
	name       string // node name; static pods are named <pod>-<name>
	dir        string
	rootDir    string
	manifests  string
	podLogs    string
	logPath    string
	cgroupRoot string // below every hierarchy, e.g. /floe-kubelet-1a2b3c
	roPort     int    // read-only API: /pods
	port       int    // authenticated API (anonymous allowed): container logs
	cmd        *exec.Cmd
	waitErr    chan error
	http       *http.Client
}

// prepareNode creates the node's directories and cgroup root. Its cleanup
// (unmount, remove, rmdir of every cgroup below the root, removal of host
// paths the kubelet should not have written) runs after everything
// registered later, so call it before starting the floe daemon: the
// daemon's cleanup removes the pods whose cgroups sit below the root.
func prepareNode(t *testing.T, bin string) *node {
	t.Helper()
	dir, err := os.MkdirTemp("", "floe-kubelet-")
	if err != nil {
		t.Fatal(err)
	}
	suffix := harness.Short()
	n := &node{
		t: t, bin: bin, name: "floe-node-" + suffix, dir: dir,
		rootDir:    filepath.Join(dir, "root"),
		manifests:  filepath.Join(dir, "manifests"),
		podLogs:    filepath.Join(dir, "pod-logs"),
		logPath:    filepath.Join(dir, "kubelet.log"),
		cgroupRoot: "/floe-kubelet-" + suffix,
		// The kubelet serves its authenticated port with a self-signed
		// certificate it makes in --cert-dir.
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		}},
	}
	preexisting := map[string]bool{}
	for _, p := range kubeletHostPaths {
		if _, err := os.Lstat(p); err == nil {
			preexisting[p] = true
		}
	}
	t.Cleanup(func() { n.cleanup(preexisting) })
	for _, d := range []string{n.rootDir, n.manifests, n.podLogs, filepath.Join(dir, "sysctl"), filepath.Join(dir, "certs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The kubelet mounts volumes (a Memory emptyDir is a tmpfs) under its
	// root dir in its own mount namespace; floe, outside, bind-mounts them
	// into containers. A shared bind mount of the root dir carries those
	// mounts over.
	if err := unix.Mount(n.rootDir, n.rootDir, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s: %v", n.rootDir, err)
	}
	if err := unix.Mount("", n.rootDir, "", unix.MS_SHARED, ""); err != nil {
		t.Fatalf("make %s shared: %v", n.rootDir, err)
	}
	// The kubelet refuses a cgroupRoot missing from any v1 hierarchy.
	for _, h := range cgroupHierarchies() {
		if filepath.Base(h) == "unified" {
			continue
		}
		p := filepath.Join(h, n.cgroupRoot)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatalf("create cgroup root: %v", err)
		}
		if filepath.Base(h) == "cpuset" {
			// A new cpuset is empty; tasks cannot join it until it has CPUs
			// and memory nodes.
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(p, f), v, 0o644); err != nil {
					t.Fatalf("set %s: %v", f, err)
				}
			}
		}
	}
	return n
}

func cgroupHierarchies() []string {
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join("/sys/fs/cgroup", e.Name()))
		}
	}
	return out
}

func (n *node) cleanup(preexisting map[string]bool) {
	n.stop()
	harness.UnmountUnder(n.t, n.rootDir)
	if n.t.Failed() {
		if b, err := os.ReadFile(n.logPath); err == nil {
			n.t.Logf("kubelet log (last 150 lines):\n%s", tail(string(b), 150))
		}
	}
	os.RemoveAll(n.dir)
	// Every cgroup the kubelet made (kubepods, QoS and pod cgroups) is
	// below the root, in whichever hierarchy it made it (the hybrid host's
	// cgroup2 mount included).
	for _, h := range cgroupHierarchies() {
		root := filepath.Join(h, n.cgroupRoot)
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
		for _, d := range dirs {
			if err := os.Remove(d); err != nil {
				n.t.Errorf("remove cgroup %s: %v", d, err)
			}
		}
	}
	for _, p := range kubeletHostPaths {
		if preexisting[p] {
			continue
		}
		if _, err := os.Lstat(p); err == nil {
			n.t.Errorf("the kubelet wrote %s on the host (its mount namespace should have kept it)", p)
			harness.UnmountUnder(n.t, p)
			os.RemoveAll(p)
		}
	}
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs the kubelet against floe's socket and waits for its
// read-only API. podCIDR is what the kubelet hands the runtime.
func (n *node) start(socket, podCIDR string) {
	t := n.t
	t.Helper()
	n.roPort, n.port = freePort(t), freePort(t)
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://%s
staticPodPath: %s
fileCheckFrequency: 1s
syncFrequency: 5s
podLogsDir: %s
address: 127.0.0.1
port: %d
readOnlyPort: %d
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
# What this host needs: cgroup v1 (hybrid), swap allowed, no systemd.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: true
cgroupRoot: %s
enforceNodeAllocatable: []
localStorageCapacityIsolation: false
# Check the kernel sysctls instead of writing them (the fakes in the
# kubelet's mount namespace hold what it wants).
protectKernelDefaults: true
makeIPTablesUtilChains: false
# Lowering its own oom_score_adj needs CAP_SYS_RESOURCE.
oomScoreAdj: 0
serializeImagePulls: false
podCIDR: %s
resolvConf: /etc/resolv.conf
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "0%%"
  nodefs.available: "0%%"
  nodefs.inodesFree: "0%%"
  imagefs.available: "0%%"
`, socket, n.manifests, n.podLogs, n.port, n.roPort, freePort(t), n.cgroupRoot, podCIDR)
	configPath := filepath.Join(n.dir, "kubelet-config.yaml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}

	// The script runs in a new mount namespace (unshare --mount) before
	// exec'ing the kubelet. The mounts holding /var/log, /var/lib and
	// /proc/sys are made private there first, so nothing mounted over them
	// reaches the host; the shared root dir mount stays shared.
	var script strings.Builder
	script.WriteString("set -e\n")
	script.WriteString(`for p in /var/log /var/lib /proc/sys; do mount --make-private "$(findmnt -n -o TARGET -T $p)"; done` + "\n")
	for _, s := range kubeletSysctls {
		cur, err := os.ReadFile(filepath.Join("/proc/sys", s.key))
		if err != nil {
			t.Fatalf("read sysctl %s: %v", s.key, err)
		}
		if strings.TrimSpace(string(cur)) == s.value {
			continue
		}
		fake := filepath.Join(n.dir, "sysctl", strings.ReplaceAll(s.key, "/", "."))
		if err := os.WriteFile(fake, []byte(s.value+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&script, "mount --bind %s /proc/sys/%s\n", fake, s.key)
	}
	// /var/log/containers (symlinks for log collectors) and
	// /var/lib/kubelet/device-plugins are fixed paths: give the kubelet
	// empty ones of its own.
	script.WriteString("mount -t tmpfs -o mode=0755 floe-kubelet-log /var/log\n")
	script.WriteString("mount -t tmpfs -o mode=0755 floe-kubelet-lib /var/lib\n")
	script.WriteString(`exec "$@"` + "\n")

	logf, err := os.Create(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	n.cmd = exec.Command("unshare", "--mount", "--propagation", "unchanged", "--",
		"/bin/sh", "-c", script.String(), "kubelet-ns",
		n.bin, "--config", configPath, "--root-dir", n.rootDir,
		"--cert-dir", filepath.Join(n.dir, "certs"), "--hostname-override", n.name, "--v", "1")
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	// Own process group (test signals stay away); killed if the test
	// process dies.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start kubelet: %v", err)
	}
	n.waitErr = make(chan error, 1)
	cmd := n.cmd
	go func() { n.waitErr <- cmd.Wait() }()

	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := n.pods(); err == nil {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("kubelet read-only API not up within 2m: %v", err)
		}
		select {
		case err := <-n.waitErr:
			n.waitErr <- err
			b, _ := os.ReadFile(n.logPath)
			t.Fatalf("kubelet exited during startup: %v\n%s", err, tail(string(b), 60))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM (the kubelet leaves pods running) and reaps it.
func (n *node) stop() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.waitErr:
	case <-time.After(20 * time.Second):
		n.cmd.Process.Kill()
		<-n.waitErr
	}
	n.cmd = nil
}

// get reads path from the read-only port, or from the authenticated one
// (anonymous requests allowed) for what only that one serves: the
// read-only server has no debugging handlers, so no container logs.
func (n *node) get(path string, secure bool) ([]byte, error) {
	url := fmt.Sprintf("http://127.0.0.1:%d%s", n.roPort, path)
	if secure {
		url = fmt.Sprintf("https://127.0.0.1:%d%s", n.port, path)
	}
	resp, err := n.http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// post sends an empty POST to the authenticated port (/run).
func (n *node) post(path string) (string, error) {
	resp, err := n.http.Post(fmt.Sprintf("https://127.0.0.1:%d%s", n.port, path), "", nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("POST %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), err
}

// pods is the kubelet's /pods (static pods with the status the kubelet
// computed), keyed by the manifest's pod name.
func (n *node) pods() (map[string]*corev1.Pod, error) {
	body, err := n.get("/pods", false)
	if err != nil {
		return nil, err
	}
	var list corev1.PodList
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("decode /pods: %w", err)
	}
	out := make(map[string]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		p := &list.Items[i]
		out[strings.TrimSuffix(p.Name, "-"+n.name)] = p
	}
	return out, nil
}

// logs reads a container's log through the kubelet.
func (n *node) logs(pod, container string, previous bool) (string, error) {
	q := ""
	if previous {
		q = "?previous=true"
	}
	b, err := n.get(fmt.Sprintf("/containerLogs/default/%s-%s/%s%s", pod, n.name, container, q), true)
	return string(b), err
}

// waitLog polls a container's log until it contains want.
func (n *node) waitLog(t *testing.T, pod, container, want string, timeout time.Duration) string {
	t.Helper()
	var last string
	var err error
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if last, err = n.logs(pod, container, false); err == nil && strings.Contains(last, want) {
			return last
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("log of %s/%s has no %q after %v (err %v):\n%s", pod, container, want, timeout, err, last)
	return ""
}

// waitPods polls /pods until cond accepts them.
func (n *node) waitPods(t *testing.T, what string, timeout time.Duration, cond func(map[string]*corev1.Pod) error) map[string]*corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var pods map[string]*corev1.Pod
	var err error
	for {
		pods, err = n.pods()
		if err == nil {
			if err = cond(pods); err == nil {
				return pods
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	dump, _ := json.MarshalIndent(statuses(pods), "", "  ")
	t.Fatalf("%s: not within %v: %v\npod statuses: %s", what, timeout, err, dump)
	return nil
}

// statuses trims pods to their status for failure messages.
func statuses(pods map[string]*corev1.Pod) map[string]corev1.PodStatus {
	out := map[string]corev1.PodStatus{}
	for k, p := range pods {
		out[k] = p.Status
	}
	return out
}

// addPod writes a static pod manifest (by rename, so the kubelet never
// reads half a file; it ignores dot files).
func (n *node) addPod(p *corev1.Pod) {
	n.t.Helper()
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		n.t.Fatal(err)
	}
	tmp := filepath.Join(n.manifests, "."+p.Name+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(n.manifests, p.Name+".json")); err != nil {
		n.t.Fatal(err)
	}
}

// removeAllPods deletes every manifest.
func (n *node) removeAllPods() {
	n.t.Helper()
	entries, err := os.ReadDir(n.manifests)
	if err != nil {
		n.t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(n.manifests, e.Name())); err != nil {
			n.t.Fatal(err)
		}
	}
}

// httpGet fetches a URL with a short timeout.
func httpGet(url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = errors.New(resp.Status)
	}
	return string(b), err
}
