package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/harness"
	"github.com/floe-cri/floe/test/needs"
)

// containerd is Debian's containerd (1.6) with its CRI plugin, run as the
// peer of a side-by-side benchmark: its own root, state, socket, CNI conf
// dir and registry hosts, so it shares nothing with a node's containerd.
type containerd struct {
	t       testing.TB
	dir     string
	socket  string
	logPath string
	cmd     *exec.Cmd
	waitErr chan error
	conn    *grpc.ClientConn
	Runtime runtimeapi.RuntimeServiceClient
	Images  runtimeapi.ImageServiceClient
}

// containerdOptions are what the peer must share with floe to do the same
// work: the CNI conflist, the registry and the sandbox (pause) image.
type containerdOptions struct {
	Conflist     string // path of the conflist to copy into its conf dir
	RegistryHost string // 127.0.0.1:PORT, plain http
	SandboxImage string // pause image reference in that registry
}

// containerdConfig is the config.toml of the peer. The host has no
// CAP_SYS_RESOURCE (so oom_score_adj is clamped) and no systemd (so the
// cgroupfs driver); stream server, metrics and debug stay on loopback or
// off.
const containerdConfig = `version = 2
root = %[1]q
state = %[2]q
oom_score = 0

[grpc]
  address = %[3]q

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[6]q
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %[7]q
`

// startContainerd starts the peer and waits until its CRI answers. It is
// stopped, its shims killed and its mounts removed when the test ends.
func startContainerd(t testing.TB, o containerdOptions) *containerd {
	t.Helper()
	needs.Binary(t, "containerd")
	// Short: containerd's socket path, plus ".ttrpc", must fit sun_path.
	dir, err := os.MkdirTemp("", "floe-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &containerd{t: t, dir: dir, socket: filepath.Join(dir, "c.sock"), logPath: filepath.Join(dir, "containerd.log")}
	t.Cleanup(c.cleanup)
	cniDir, hostsDir := filepath.Join(dir, "cni"), filepath.Join(dir, "certs.d")
	conf, err := os.ReadFile(o.Conflist)
	if err != nil {
		t.Fatal(err)
	}
	hosts := fmt.Sprintf("server = \"http://%[1]s\"\n\n[host.\"http://%[1]s\"]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n", o.RegistryHost)
	config := fmt.Sprintf(containerdConfig, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.socket,
		filepath.Join(dir, "opt"), o.SandboxImage, cniDir, hostsDir)
	for path, body := range map[string][]byte{
		filepath.Join(cniDir, filepath.Base(o.Conflist)):      conf,
		filepath.Join(hostsDir, o.RegistryHost, "hosts.toml"): []byte(hosts),
		filepath.Join(dir, "config.toml"):                     []byte(config),
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.start()
	return c
}

func (c *containerd) start() {
	c.t.Helper()
	logf, err := os.Create(c.logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = exec.Command("containerd", "--config", filepath.Join(c.dir, "config.toml"))
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		c.t.Fatalf("start containerd: %v", err)
	}
	c.waitErr = make(chan error, 1)
	cmd := c.cmd
	go func() { c.waitErr <- cmd.Wait() }()
	c.conn = harness.DialCRI(c.t, c.socket)
	c.Runtime = runtimeapi.NewRuntimeServiceClient(c.conn)
	c.Images = runtimeapi.NewImageServiceClient(c.conn)
	// Status, not Version: the CRI plugin answers Version before its
	// network config is loaded, and RunPodSandbox would then fail.
	harness.WaitStarted(c.t, "containerd", c.waitErr, 30*time.Second, 100*time.Millisecond, func(ctx context.Context) error {
		st, err := c.Runtime.Status(ctx, &runtimeapi.StatusRequest{})
		if err == nil && !allReady(st.GetStatus()) {
			err = fmt.Errorf("not ready: %v", st.GetStatus())
		}
		return err
	}, c.log)
}

func allReady(st *runtimeapi.RuntimeStatus) bool {
	if st == nil {
		return false
	}
	for _, cond := range st.Conditions {
		if !cond.Status {
			return false
		}
	}
	return true
}

func (c *containerd) log() string {
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}

// cleanup removes every pod the peer still has, stops it, kills the shims
// it started (found by the -address argument that names this peer's
// socket, so no other containerd's shims are touched) and removes its
// mounts and directories.
func (c *containerd) cleanup() {
	if c.cmd != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if resp, err := c.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, sb := range resp.Items {
				c.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id})
				if _, err := c.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
					c.t.Errorf("containerd cleanup: remove pod %s: %v", sb.Id, err)
				}
			}
		}
		cancel()
		c.conn.Close()
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.waitErr:
		case <-time.After(30 * time.Second):
			c.cmd.Process.Kill()
			<-c.waitErr
		}
		c.cmd = nil
	}
	// A shim exits on its own once its last task is deleted; give it
	// a moment before calling it a leak.
	shims := c.shims()
	for deadline := time.Now().Add(5 * time.Second); len(shims) > 0 && time.Now().Before(deadline); shims = c.shims() {
		time.Sleep(100 * time.Millisecond)
	}
	if len(shims) > 0 {
		c.t.Errorf("containerd left %d shims running after its pods were removed: %v", len(shims), shims)
		for _, pid := range shims {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if c.t.Failed() {
		c.t.Logf("containerd log:\n%s", c.log())
	}
	harness.UnmountUnder(c.t, c.dir)
	os.RemoveAll(c.dir)
}

// shims lists the PIDs of containerd-shim processes started for this
// peer: their command line carries "-address <socket>".
func (c *containerd) shims() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == c.socket {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
