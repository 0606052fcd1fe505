package integration

// Behaviours critest (the CRI conformance suite) checks, each tested here
// too so a regression shows in floe's own suite with a precise message.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/harness"
)

func TestPodHostnameDefaultsToTheNodesAndLongOnesAreRefused(t *testing.T) {
	harness.CheckLeaks(t)
	// critest's pod names are longer than the 64 bytes sethostname takes
	// and it sends no hostname: the pod must get the node's hostname.
	long := "create-PodSandbox-for-container-" + strings.Repeat("x", 60)
	e := newContainerEnv(t, func(p *runtimeapi.PodSandboxConfig) {
		p.Metadata.Name = long
		p.Hostname = ""
	})
	node, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	id := e.run(t, e.config("host", "sleep", "60"))
	if out, _ := e.exec(t, id, "hostname"); out != node {
		t.Errorf("hostname in a pod without one = %q, want the node's %q", out, node)
	}

	// An explicit hostname over 64 bytes is the caller's error, refused
	// before anything is made.
	cfg := podConfig("longhost")
	cfg.Hostname = strings.Repeat("h", 65)
	before := len(listPods(t, e.d))
	_, err = e.d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "hostname") {
		t.Errorf("65-byte hostname: %v, want InvalidArgument naming hostname", err)
	}
	if after := len(listPods(t, e.d)); after != before {
		t.Errorf("a refused pod was left behind: %d pods, want %d", after, before)
	}
}

// With setHostnameAsFQDN and no cluster domain the kubelet sends an
// absolute name, trailing dot included; SIG Node's "the FQDN is set as
// hostname" spec expects the pod to see exactly that name.
func TestPodHostnameMayBeAnAbsoluteFQDN(t *testing.T) {
	harness.CheckLeaks(t)
	const fqdn = "hostfqdn-1.t.hostfqdn-99.svc."
	e := newContainerEnv(t, func(p *runtimeapi.PodSandboxConfig) { p.Hostname = fqdn })
	id := e.run(t, e.config("host", "sleep", "60"))
	if out, _ := e.exec(t, id, "hostname"); out != fqdn {
		t.Errorf("hostname = %q, want %q", out, fqdn)
	}
	if out, _ := e.exec(t, id, "cat", "/etc/hostname"); out != fqdn {
		t.Errorf("/etc/hostname = %q, want %q", out, fqdn)
	}
}

func listPods(t *testing.T, d *harness.Daemon) []*runtimeapi.PodSandbox {
	t.Helper()
	resp, err := d.Runtime.ListPodSandbox(harness.Ctx(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Items
}

func TestRecursiveReadOnlyMounts(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	st, err := e.d.Runtime.Status(harness.Ctx(t), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	rro := false
	for _, h := range st.RuntimeHandlers {
		if h.Name == "runc" {
			rro = h.Features.GetRecursiveReadOnlyMounts()
		}
	}
	if !rro {
		t.Fatalf("runc (1.1+) handler does not report recursive read-only mounts: %v", st.RuntimeHandlers)
	}
	// A host dir with a tmpfs mounted inside: only a recursive read-only
	// bind makes the tmpfs read-only too.
	host := t.TempDir()
	sub := filepath.Join(host, "tmpfs")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(sub, syscall.MNT_DETACH) })
	mount := func(recursive, ro bool, prop runtimeapi.MountPropagation) *runtimeapi.Mount {
		return &runtimeapi.Mount{ContainerPath: "/mnt", HostPath: host, Readonly: ro, RecursiveReadOnly: recursive, Propagation: prop}
	}
	touch := func(name string, m *runtimeapi.Mount) string {
		cfg := e.config(name, "sleep", "60")
		cfg.Mounts = []*runtimeapi.Mount{m}
		id := e.run(t, cfg)
		out, _ := e.exec(t, id, "sh", "-c", "touch /mnt/tmpfs/"+name+" 2>&1 && echo written")
		return out
	}
	if out := touch("plain-ro", mount(false, true, runtimeapi.MountPropagation_PROPAGATION_PRIVATE)); out != "written" {
		t.Errorf("non-recursive read-only mount: the submount should stay writable, got %q", out)
	}
	if out := touch("rro", mount(true, true, runtimeapi.MountPropagation_PROPAGATION_PRIVATE)); !strings.Contains(out, "Read-only file system") {
		t.Errorf("recursive read-only mount: the submount is writable: %q", out)
	}
	for name, m := range map[string]*runtimeapi.Mount{
		"not read-only":     mount(true, false, runtimeapi.MountPropagation_PROPAGATION_PRIVATE),
		"host-to-container": mount(true, true, runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER),
		"bidirectional":     mount(true, true, runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL),
	} {
		cfg := e.config("bad-rro", "true")
		cfg.Mounts = []*runtimeapi.Mount{m}
		_, err := e.d.Runtime.CreateContainer(harness.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: cfg, SandboxConfig: e.podCfg})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "recursive_read_only") {
			t.Errorf("recursive read-only, %s: %v, want InvalidArgument naming recursive_read_only", name, err)
		}
	}
}

func TestExecSyncTimeoutLeavesNoProcess(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	id := e.run(t, e.config("exec-timeout", "sleep", "600"))
	start := time.Now()
	_, err := e.d.Runtime.ExecSync(harness.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sleep", "4321"}, Timeout: 1})
	if err == nil {
		t.Fatal("ExecSync of sleep 4321 with a 1 s timeout succeeded")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("timed-out ExecSync returned after %v", took)
	}
	// Right after the call the process must be gone (not even a zombie):
	// the caller was told it timed out.
	out, _ := e.exec(t, id, "sh", "-c", "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done")
	if strings.Contains(out, "sleep 4321") {
		t.Errorf("the timed-out exec is still in the container:\n%s", out)
	}
}

func TestConcurrentRemoveImageAllSucceed(t *testing.T) {
	e := newContainerEnv(t, nil)
	ref := e.image
	for round := 0; round < 3; round++ {
		mustPull(t, e.d, ref)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = removeImage(t, e.d, ref)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: concurrent RemoveImage %d: %v", round, i, err)
			}
		}
		if img, _ := imageStatus(t, e.d, ref); img != nil {
			t.Errorf("round %d: image still present after removal", round)
		}
	}
}

// TestTwoDaemonsSideBySide: the README says daemons run side by side when
// socket, state dir and run dir differ; nothing else is set here.
func TestTwoDaemonsSideBySide(t *testing.T) {
	bin := harness.FloeBinary(t)
	type daemon struct {
		dir string
		cmd *exec.Cmd
		log *os.File
	}
	var ds []*daemon
	t.Cleanup(func() {
		for _, d := range ds {
			d.cmd.Process.Signal(syscall.SIGTERM)
			d.cmd.Wait()
			d.log.Close()
		}
	})
	for i := 0; i < 2; i++ {
		dir := t.TempDir()
		logf, err := os.Create(filepath.Join(dir, "floe.log"))
		if err != nil {
			t.Fatal(err)
		}
		// An empty --config keeps the node's /etc/floe out of the test;
		// storage stays at its default, shared as podman shares it.
		cmd := exec.Command(bin, "serve", "--config", "/dev/null",
			"--socket", dir+"/floe.sock", "--state-dir", dir+"/state", "--run-dir", dir+"/run")
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, &daemon{dir: dir, cmd: cmd, log: logf})
	}
	for _, d := range ds {
		conn, err := grpc.NewClient("unix://"+d.dir+"/floe.sock", grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		rt := runtimeapi.NewRuntimeServiceClient(conn)
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = rt.Version(ctx, &runtimeapi.VersionRequest{})
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) || d.cmd.ProcessState != nil {
				log, _ := os.ReadFile(d.log.Name())
				t.Fatalf("daemon in %s does not answer: %v\n%s", d.dir, err, log)
			}
			time.Sleep(100 * time.Millisecond)
		}
		conn.Close()
		// Each has its own inspect endpoint under its run dir, and floe
		// status finds it from the same flags.
		if _, err := os.Stat(d.dir + "/run/inspect.sock"); err != nil {
			t.Errorf("inspect socket not under the run dir: %v", err)
		}
		out, err := exec.Command(bin, "status", "--config", "/dev/null", "--socket", d.dir+"/floe.sock", "--run-dir", d.dir+"/run").CombinedOutput()
		if err != nil || !strings.Contains(string(out), d.dir+"/run/inspect.sock") {
			t.Errorf("floe status of the daemon in %s: %v\n%s", d.dir, err, out)
		}
	}
}

// TestExecSyncOutputWholeOrRefused: output up to the cap comes back byte
// for byte; more is ResourceExhausted, never an arbitrary part of it.
func TestExecSyncOutputWholeOrRefused(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	id := e.run(t, e.config("exec-output", "sleep", "600"))
	ctx := harness.Ctx(t)
	// 10 MB in short lines (the log's framing is ~20x the payload) and
	// 10 MB without a newline.
	for name, cmd := range map[string]string{
		"lines":      "yes | head -c 10000000",
		"no newline": "head -c 10000000 /dev/zero | tr '\\0' x",
	} {
		resp, err := e.d.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", cmd}, Timeout: 60},
			grpc.MaxCallRecvMsgSize(32<<20)) // the kubelet's limit is 16 MiB too
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(resp.Stdout) != 10000000 || resp.ExitCode != 0 {
			t.Errorf("%s: got %d bytes, rc %d; want 10000000 bytes, rc 0", name, len(resp.Stdout), resp.ExitCode)
		}
	}
	_, err := e.d.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "head -c 20000000 /dev/zero | tr '\\0' x"}, Timeout: 60})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("20 MB of output: %v, want ResourceExhausted", err)
	}
}

// TestStopRightAfterStartReachesALateHandler: PID 1 drops signals it has no
// handler for; a StopContainer that lands before the container has set its
// SIGTERM handler must still stop it with that signal, not wait out the
// timeout (critest's "StopContainer ... already stopped" spec flaked so).
func TestStopRightAfterStartReachesALateHandler(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	id := e.run(t, e.config("late-trap", "sh", "-c", "sleep 1; trap 'exit 7' TERM; while true; do sleep 0.1; done"))
	start := time.Now()
	if _, err := e.d.Runtime.StopContainer(harness.Ctx(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 30}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	st := e.status(t, id)
	if took > 10*time.Second || st.ExitCode != 7 {
		t.Errorf("stop took %v with exit code %d; want the handler's exit 7 within seconds", took, st.ExitCode)
	}
}
