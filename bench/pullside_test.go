package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/needs"
)

// BenchmarkPullSideBySide is the PullImage row of BenchmarkSideBySide on
// its own, for work on the pull path: the same one-layer image from the
// same local registry, pulled by floe and containerd back to back (which
// one goes first alternates) and removed, untimed, after each sample.
// With FLOE_PULL_STRACE=FILE one more floe pull runs under `strace -f
// -ttt -T` attached to the daemon, written to FILE; FLOE_PULL_STRACE_CALLS
// limits it to those system calls (strace -e trace=..., filtered in the
// kernel, so the others run at full speed).
//
//	go test ./bench -run '^$' -bench PullSideBySide -benchtime 30x
func BenchmarkPullSideBySide(b *testing.B) {
	sb := newSideBySide(b)
	ctx := context.Background()
	times := map[string][]time.Duration{}
	pull := func(p criPeer) time.Duration {
		opCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		start := time.Now()
		if _, err := p.images.PullImage(opCtx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: sb.pullRef}}); err != nil {
			b.Fatalf("%s pull: %v", p.name, err)
		}
		took := time.Since(start)
		if err := p.removeImage(ctx, sb.pullRef); err != nil {
			b.Fatalf("%s remove %s: %v", p.name, sb.pullRef, err)
		}
		return took
	}
	// One untimed pull each: the first one opens caches and connections.
	for _, p := range sb.peers {
		pull(p)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		order := sb.peers
		if i%2 == 1 {
			order = []criPeer{sb.peers[1], sb.peers[0]}
		}
		for _, p := range order {
			times[p.name] = append(times[p.name], pull(p))
		}
	}
	b.StopTimer()
	f, c := times["floe"], times["containerd"]
	b.Logf("PullImage (n=%d): floe median %.1f ms p90 %.1f, containerd median %.1f ms p90 %.1f, floe/containerd %.2f (p90 %.2f)",
		len(f), ms(median(f)), ms(pct(f, 90)), ms(median(c)), ms(pct(c, 90)), ratio(median(f), median(c)), ratio(pct(f, 90), pct(c, 90)))
	b.ReportMetric(ms(median(f)), "floe-ms")
	b.ReportMetric(ms(median(c)), "containerd-ms")
	b.ReportMetric(ratio(median(f), median(c)), "floe/containerd")
	if path := os.Getenv("FLOE_PULL_STRACE"); path != "" {
		tracePull(b, path, func() { pull(sb.peers[0]) }, sb.cb.d.PID())
	}
}

// tracePull runs pull with strace attached to every thread of pid.
func tracePull(b *testing.B, path string, pull func(), pid int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"-f", "-ttt", "-T", "-s", "120", "-o", path, "-p", strconv.Itoa(pid)}
	if calls := os.Getenv("FLOE_PULL_STRACE_CALLS"); calls != "" {
		args = append(args, "--seccomp-bpf", "-e", "trace="+calls)
	}
	cmd := exec.CommandContext(ctx, "strace", args...)
	errPath := path + ".stderr"
	errf, err := os.Create(errPath)
	if err != nil {
		b.Fatal(err)
	}
	defer errf.Close()
	cmd.Stderr = errf
	if err := cmd.Start(); err != nil {
		needs.Missing(b, "strace", err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if msg, _ := os.ReadFile(errPath); len(msg) > 0 {
			break
		}
	}
	start := time.Now()
	pull()
	took := time.Since(start)
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	b.Log(fmt.Sprintf("traced floe pull: %.1f ms, trace in %s", ms(took), path))
}
