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
// namespace, when installed. Samples are taken once per process
// (measureOnce).
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
	measureOnce(b, func(r *onceResult) {
		rss := map[string]int{}
		for _, k := range kinds {
			var vm, anon []int
			for j := 0; j < podInitSamples; j++ {
				pid, stop, err := k.start()
				if err != nil {
					b.Fatalf("%s: %v", k.name, err)
				}
				v, a := procRSS(pid)
				stop()
				vm, anon = append(vm, v), append(anon, a)
			}
			slices.Sort(vm)
			slices.Sort(anon)
			rss[k.name] = vm[len(vm)/2]
			r.report(b, float64(vm[len(vm)/2]), k.name+"-VmRSS-kB")
			r.report(b, float64(anon[len(anon)/2]), k.name+"-RssAnon-kB")
		}
		if c, ok := rss["catatonit"]; ok {
			r.report(b, float64(rss["c"])/float64(c), "c/catatonit")
			r.report(b, float64(rss["go"])/float64(c), "go/catatonit")
		}
	})
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
// benchmark runs it), after both have answered and idled for idleWait:
// medians of idleSamples fresh pairs. It takes its samples once per
// process (measureOnce), so it shares a command with the per-sample
// benchmarks whatever -benchtime says.
//
//	go test ./bench -run '^$' -bench IdleRSSVsContainerd -benchtime 1x
func BenchmarkIdleRSSVsContainerd(b *testing.B) {
	measureOnce(b, func(r *onceResult) {
		var fr, fa, cr, ca []int
		for i := 0; i < idleSamples; i++ {
			d := harness.StartDaemon(b, harness.Options{LogLevelFromConfig: true})
			c := startContainerd(b, containerdOptions{
				Conflist:     filepath.Join(d.CNIDir, "10-floetest.conflist"),
				RegistryHost: "127.0.0.1:1", SandboxImage: "127.0.0.1:1/pause:none",
			})
			time.Sleep(idleWait)
			r1, a1 := procRSS(d.PID())
			r2, a2 := procRSS(c.cmd.Process.Pid)
			fr, fa, cr, ca = append(fr, r1), append(fa, a1), append(cr, r2), append(ca, a2)
			r.logf(b, "floe VmRSS %d kB (anon %d kB), containerd %d kB (anon %d kB)", r1, a1, r2, a2)
			d.Stop()
			c.cleanup()
		}
		mid := func(v []int) float64 {
			slices.Sort(v)
			return float64(v[len(v)/2])
		}
		r.report(b, mid(fr)/1024, "floe-VmRSS-MB")
		r.report(b, mid(fa)/1024, "floe-RssAnon-MB")
		r.report(b, mid(cr)/1024, "containerd-VmRSS-MB")
		r.report(b, mid(ca)/1024, "containerd-RssAnon-MB")
		r.report(b, mid(fr)/mid(cr), "floe/containerd")
	})
}

const (
	idleWait    = 10 * time.Second
	idleSamples = 3
)
