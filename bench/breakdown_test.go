package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/ocitest"
)

// breakdownSamples pod starts and floors are timed step by step.
const breakdownSamples = 30

// BenchmarkStartBreakdown splits the pod start of the side-by-side
// benchmark (RunPodSandbox + CreateContainer + StartContainer of a busybox
// shell, untraced) and its floor (ip netns add + CNI ADD + `runc run -d`)
// into their steps, alternating sample by sample, and times the steps a
// runtime with a container monitor cannot avoid beside the floor's: runc's
// create and start as two programs (`runc create` + `runc start`, what
// every CRI runtime driving runc through conmon or a shim runs) against
// one `runc run -d`. Then StopPodSandbox of floe against the floor's
// CNI DEL and netns removal. It takes its samples itself, once per process:
//
//	go test ./bench -run '^$' -bench StartBreakdown -benchtime 1x -v
func BenchmarkStartBreakdown(b *testing.B) {
	measureOnce(b, func(r *onceResult) {
		cb := newContainerBench(b)
		p := criPeer{"floe", cb.d.Runtime, cb.d.Images}
		ctx := context.Background()
		steps := map[string][]time.Duration{}
		var order []string
		add := func(name string, d time.Duration) {
			if _, ok := steps[name]; !ok {
				order = append(order, name)
			}
			steps[name] = append(steps[name], d)
		}
		for i := range breakdownSamples {
			// floe, one RPC at a time.
			run := &podRun{}
			if err := timedStartPod(ctx, p, run, cb.image, add); err != nil {
				removeAll(b, p, []*podRun{run})
				b.Fatal(err)
			}
			// As the kubelet (and SideBySide): the container first, untimed.
			if _, err := p.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: run.container, Timeout: 10}); err != nil {
				b.Fatalf("StopContainer: %v", err)
			}
			start := time.Now()
			if _, err := p.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: run.pod}); err != nil {
				b.Fatalf("StopPodSandbox: %v", err)
			}
			add("floe StopPodSandbox", time.Since(start))
			removeAll(b, p, []*podRun{run})

			// The floor, step by step; every other sample splits runc's
			// run into create + start.
			id, bundle, netns := floorBundle(b)
			cb.timedFloor(b, id, bundle, netns, i%2 == 1, add)
		}
		// Inside floe, from its log: CNI ADD in RunPodSandbox, and the
		// steps of CreateContainer.
		for _, l := range strings.Split(cb.d.Log(), "\n") {
			switch {
			case strings.Contains(l, `msg="pod network set up"`):
				for k, d := range logDurations(l) {
					if k == "took" {
						add("  in RunPodSandbox: CNI ADD", d)
					}
				}
			case strings.Contains(l, `msg="container created"`):
				for _, k := range []string{"record", "rootfs", "bundle", "runtime"} {
					if d, ok := logDurations(l)[k]; ok {
						add("  in CreateContainer: "+createStepNames[k], d)
					}
				}
			}
		}
		var tb strings.Builder
		fmt.Fprintf(&tb, "%-44s %9s %9s\n", "step (ms)", "median", "p90")
		for _, name := range order {
			fmt.Fprintf(&tb, "%-44s %9.1f %9.1f\n", name, ms(median(steps[name])), ms(pct(steps[name], 90)))
		}
		floe := median(steps["floe RunPodSandbox"]) + median(steps["floe CreateContainer"]) + median(steps["floe StartContainer"])
		floor := median(steps["floor ip netns add"]) + median(steps["floor CNI ADD"]) + median(steps["floor runc run -d"])
		split := median(steps["floor runc create"]) + median(steps["floor runc start"])
		fmt.Fprintf(&tb, "%-44s %9.1f   (%.2f× floor)\n", "floe, sum of step medians", ms(floe), ratio(floe, floor))
		fmt.Fprintf(&tb, "%-44s %9.1f\n", "floor, sum of step medians", ms(floor))
		fmt.Fprintf(&tb, "%-44s %9.1f   (%.2f× floor)\n", "floor with runc create + start for run -d", ms(floor-median(steps["floor runc run -d"])+split), ratio(floor-median(steps["floor runc run -d"])+split, floor))
		r.report(b, ratio(floe, floor), "start-floe/floor")
		r.report(b, ratio(floor-median(steps["floor runc run -d"])+split, floor), "start-split-runc/floor")
		r.report(b, ratio(median(steps["floe StopPodSandbox"]), median(steps["floor CNI DEL"])+median(steps["floor ip netns del"])), "stop-floe/floor")
		r.logf(b, "\n%s", tb.String())
	})
}

// createStepNames explain the step durations floe logs for a creation.
var createStepNames = map[string]string{
	"record":  "record (bbolt)",
	"rootfs":  "writable layer (storage)",
	"bundle":  "OCI spec + bundle",
	"runtime": "conmon + runc create",
}

var logDurationRE = regexp.MustCompile(`(\w+)=([0-9.]+(?:ns|µs|us|ms|s))\b`)

// logDurations are the duration attributes of one slog text line.
func logDurations(line string) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, m := range logDurationRE.FindAllStringSubmatch(line, -1) {
		if d, err := time.ParseDuration(m[2]); err == nil {
			out[m[1]] = d
		}
	}
	return out
}

// timedStartPod is criPeer.startPod with each RPC timed on its own.
func timedStartPod(ctx context.Context, p criPeer, r *podRun, image string, add func(string, time.Duration)) error {
	start := time.Now()
	return p.startPodTimed(ctx, r, image, func(step string) {
		add("floe "+step, time.Since(start))
		start = time.Now()
	})
}

// timedFloor is containerBench.floor with each step timed; split runs
// `runc create` + `runc start` instead of `runc run -d`. It undoes what
// it made, timing the CNI DEL and the netns removal.
func (cb *containerBench) timedFloor(b *testing.B, id, bundle, netns string, split bool, add func(string, time.Duration)) {
	ctx := context.Background()
	rt := floorRuntimeConf(id, netns)
	defer func() {
		ocitest.ForceDelete(id)
		start := time.Now()
		if err := cb.cni.DelNetworkList(ctx, cb.list, rt); err != nil {
			b.Errorf("floor DEL: %v", err)
		}
		add("floor CNI DEL", time.Since(start))
		start = time.Now()
		if out, err := exec.Command("ip", "netns", "del", netns).CombinedOutput(); err != nil {
			b.Errorf("ip netns del: %v %s", err, out)
		}
		add("floor ip netns del", time.Since(start))
	}()
	start := time.Now()
	if out, err := exec.Command("ip", "netns", "add", netns).CombinedOutput(); err != nil {
		b.Fatalf("ip netns add: %v %s", err, out)
	}
	add("floor ip netns add", time.Since(start))
	start = time.Now()
	if _, err := cb.cni.AddNetworkList(ctx, cb.list, rt); err != nil {
		b.Fatalf("floor ADD: %v", err)
	}
	add("floor CNI ADD", time.Since(start))
	if !split {
		start = time.Now()
		if err := runcRunDetached(ctx, id, bundle); err != nil {
			b.Fatal(err)
		}
		add("floor runc run -d", time.Since(start))
		return
	}
	for _, args := range [][]string{{"create", "--bundle", bundle, id}, {"start", id}} {
		start = time.Now()
		if err := runcDetached(ctx, bundle, args...); err != nil {
			b.Fatal(err)
		}
		add("floor runc "+args[0], time.Since(start))
	}
}

// runcDetached runs `runc ARGS...` with its output (and the container's
// stdio, which `runc create` hands down) in a file of the bundle.
func runcDetached(ctx context.Context, bundle string, args ...string) error {
	out, err := os.OpenFile(filepath.Join(bundle, "output"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "runc", args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(out.Name())
		return fmt.Errorf("runc %s: %w: %s", args[0], err, msg)
	}
	return nil
}
