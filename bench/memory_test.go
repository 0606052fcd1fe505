package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/floe-cri/floe/internal/podinit"
	"github.com/floe-cri/floe/test/harness"
)

// BenchmarkPodInitRSS reports the resident memory (median VmRSS and
// RssAnon of podInitSamples processes each) of the init of a pod that
// shares its PID namespace, as floe runs it: the static C init
// (floe-pod-reaper) and the Go init it replaces (floe-pod-init), both
// launched by floe-pod-init as the daemon does; and, as the yardstick,
// Debian's `catatonit -P` (podman's pause process) as PID 1 of a new PID
// namespace, when installed.
//
//	go test ./bench -run '^$' -bench PodInitRSS -benchtime 1x
func BenchmarkPodInitRSS(b *testing.B) {
	harness.RequireRoot(b)
	dir := filepath.Dir(harness.FloeBinary(b))
	launcher := filepath.Join(dir, "floe-pod-init")
	kinds := []struct {
		name  string
		start func() (pid int, stop func(), err error)
	}{
		{"c", func() (int, func(), error) {
			return startPodInit(podinit.Programs{Launcher: launcher, Init: filepath.Join(dir, "floe-pod-reaper")})
		}},
		{"go", func() (int, func(), error) { return startPodInit(podinit.Programs{Launcher: launcher}) }},
	}
	if _, err := exec.LookPath("catatonit"); err == nil {
		kinds = append(kinds, struct {
			name  string
			start func() (int, func(), error)
		}{"catatonit", startCatatonit})
	} else {
		b.Log("catatonit not installed: no yardstick (apt-get install catatonit)")
	}
	for i := 0; i < b.N; i++ {
		rss := map[string]int{}
		for _, k := range kinds {
			var vm, anon []int
			for j := 0; j < podInitSamples; j++ {
				pid, stop, err := k.start()
				if err != nil {
					b.Fatalf("%s: %v", k.name, err)
				}
				r, a := procRSS(pid)
				stop()
				vm, anon = append(vm, r), append(anon, a)
			}
			slices.Sort(vm)
			slices.Sort(anon)
			rss[k.name] = vm[len(vm)/2]
			b.ReportMetric(float64(vm[len(vm)/2]), k.name+"-VmRSS-kB")
			b.ReportMetric(float64(anon[len(anon)/2]), k.name+"-RssAnon-kB")
		}
		if c, ok := rss["catatonit"]; ok {
			b.ReportMetric(float64(rss["c"])/float64(c), "c/catatonit")
			b.ReportMetric(float64(rss["go"])/float64(c), "go/catatonit")
		}
	}
}

const podInitSamples = 10

func startPodInit(p podinit.Programs) (int, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in, err := podinit.Start(ctx, podinit.Options{Programs: p})
	if err != nil {
		return 0, nil, err
	}
	return in.Pid, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		in.Stop(ctx, 5*time.Second)
	}, nil
}

// startCatatonit runs `catatonit -P` as PID 1 of a new PID namespace and
// returns once it sleeps (its pages are then all touched).
func startCatatonit() (int, func(), error) {
	cmd := exec.Command("catatonit", "-P")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	stop := func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if f, err := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", cmd.Process.Pid)); err == nil && len(f) > 0 && string(f) != "0" {
			return cmd.Process.Pid, stop, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	return 0, nil, fmt.Errorf("catatonit -P did not settle")
}

// BenchmarkIdleRSSVsContainerd reports the resident memory of a fresh
// floe daemon (defaults but for its private paths, info logging, as `make
// run`) and of containerd with its CRI plugin (as the side-by-side
// benchmark runs it), after both have answered and idled for idleWait.
//
//	go test ./bench -run '^$' -bench IdleRSSVsContainerd -benchtime 1x
func BenchmarkIdleRSSVsContainerd(b *testing.B) {
	for i := 0; i < b.N; i++ {
		d := harness.StartDaemon(b, harness.Options{LogLevelFromConfig: true})
		c := startContainerd(b, containerdOptions{
			Conflist:     filepath.Join(d.CNIDir, "10-floetest.conflist"),
			RegistryHost: "127.0.0.1:1", SandboxImage: "127.0.0.1:1/pause:none",
		})
		time.Sleep(idleWait)
		fr, fa := procRSS(d.PID())
		cr, ca := procRSS(c.cmd.Process.Pid)
		b.ReportMetric(float64(fr)/1024, "floe-VmRSS-MB")
		b.ReportMetric(float64(fa)/1024, "floe-RssAnon-MB")
		b.ReportMetric(float64(cr)/1024, "containerd-VmRSS-MB")
		b.ReportMetric(float64(ca)/1024, "containerd-RssAnon-MB")
		b.ReportMetric(float64(fr)/float64(cr), "floe/containerd")
		b.Logf("floe VmRSS %d kB (anon %d kB), containerd %d kB (anon %d kB)", fr, fa, cr, ca)
		d.Stop()
		c.cleanup()
	}
}

const idleWait = 10 * time.Second
