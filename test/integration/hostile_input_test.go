package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/harness"
)

// Input that would reach places it must not is refused before anything is
// made, naming the field.
func TestHostileNamesHostnamesAndLogPathsAreRefused(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	ctx := harness.Ctx(t)

	pods := map[string]func(*runtimeapi.PodSandboxConfig){
		"metadata.name":      func(p *runtimeapi.PodSandboxConfig) { p.Metadata.Name = "x;IP=10.233.77.77" },
		"metadata.namespace": func(p *runtimeapi.PodSandboxConfig) { p.Metadata.Namespace = "ns=1" },
		"metadata.uid":       func(p *runtimeapi.PodSandboxConfig) { p.Metadata.Uid = "../../uid" },
		"hostname":           func(p *runtimeapi.PodSandboxConfig) { p.Hostname = "a/b" },
	}
	before := len(listPods(t, e.d))
	for field, mutate := range pods {
		cfg := podConfig("hostile")
		mutate(cfg)
		_, err := e.d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v, want InvalidArgument naming %s", field, err, field)
		}
	}
	if after := len(listPods(t, e.d)); after != before {
		t.Errorf("refused pods were left behind: %d pods, want %d", after, before)
	}

	// A log path that climbs out of the pod's log directory, and one that
	// is a symlink to a file elsewhere: the container's output must never
	// land outside the log directory.
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("untouched\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(e.logDir, "link.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(outside), filepath.Join(e.logDir, "linkdir")); err != nil {
		t.Fatal(err)
	}
	for _, lp := range []string{"../../../../tmp/escape.log", "link.log", "linkdir/victim"} {
		cfg := e.config("logpath", "echo", "written")
		cfg.LogPath = lp
		_, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: cfg, SandboxConfig: e.podCfg})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "log_path") {
			t.Errorf("log_path %q: %v, want InvalidArgument naming log_path", lp, err)
		}
	}
	if b, _ := os.ReadFile(outside); string(b) != "untouched\n" {
		t.Errorf("the file behind the symlink was written: %q", b)
	}
	if _, err := os.Stat("/tmp/escape.log"); err == nil {
		t.Errorf("a log was written outside the pod log directory")
	}
	resp, err := e.d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Containers) != 0 {
		t.Errorf("refused containers were left behind: %v", resp.Containers)
	}
	// A nested log path inside the directory still works.
	cfg := e.config("nested", "echo", "nested")
	cfg.LogPath = "nested/0.log"
	id := e.run(t, cfg)
	e.waitExited(t, id)
	if out := e.output(t, id); !strings.Contains(out, "nested") {
		t.Errorf("nested log path: %q", out)
	}
}

// TestKill9DuringParallelSharedPIDPodsLeavesNoInit: pod inits are launched
// before the daemon records them; killed in between, the restarted daemon
// must still find and end them (they carry the pod id).
func TestKill9DuringParallelSharedPIDPodsLeavesNoInit(t *testing.T) {
	harness.CheckLeaks(t)
	d := harness.StartDaemon(t, harness.Options{})
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := podConfig(fmt.Sprintf("pidpod%d", i))
			cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
		}()
	}
	// Kill floe as soon as inits run: CNI ADD comes after the launch, so
	// these pods are not recorded as ready yet.
	deadline := time.Now().Add(20 * time.Second)
	for countPodInits() < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if countPodInits() == 0 {
		t.Fatal("no pod init was launched")
	}
	d.Kill9()
	wg.Wait()
	d.Start()
	ctx := harness.Ctx(t)
	for _, p := range listPods(t, d) {
		if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Errorf("remove %s: %v", p.Id, err)
		}
	}
	d.Stop()
	// CheckLeaks then finds any floe-pod-init still alive.
}

// countPodInits counts running pod inits (their command line carries the
// pod id flag).
func countPodInits() int {
	n := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), "__floe-pod-init\x00--pod=") {
			n++
		}
	}
	return n
}
