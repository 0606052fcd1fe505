package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	// fillSamples pod starts are timed at each fill level.
	fillSamples = 15
	// fillCalls of each List*/ContainerStatus call give the p99.
	fillCalls = 300
)

// BenchmarkNodeFills measures what floe costs as a node fills up, on one
// daemon: RunPodSandbox+CreateContainer+StartContainer latency with 0,
// 100 and 250 pods already running (each sample's pod is removed again,
// untimed); then, with a second container in each of the 250 pods (500
// running containers), the p99 of ListPodSandbox, ListContainers and
// ContainerStatus; then how long a restart takes until floe answers
// Version and until it lists all 500 containers again. It takes its samples
// itself, once per process whatever -benchtime says:
//
//	go test ./bench -run '^$' -bench NodeFills -benchtime 1x
func BenchmarkNodeFills(b *testing.B) {
	measureOnce(b, func(r *onceResult) {
		cb := newContainerBench(b)
		f := &fillRun{b: b, cb: cb, p: criPeer{"floe", cb.d.Runtime, cb.d.Images}, r: r}
		defer func() { removeAll(b, f.p, f.running) }()
		f.startLevels([]int{0, 100, 250})
		// A second container in every pod: 500 containers.
		parallel(len(f.running), func(j int) {
			if _, err := addContainer(context.Background(), f.p, f.running[j], cb.image); err != nil {
				b.Errorf("second container: %v", err)
			}
		})
		if b.Failed() {
			b.FailNow()
		}
		f.queries(2 * len(f.running))
		f.restart(2 * len(f.running))
		r.logf(b, "\n%s", f.table.String())
	})
}

// BenchmarkNodeFillsSideBySide is the pod start part of BenchmarkNodeFills
// for floe and for containerd (Debian's 1.6, as in SideBySide), each on a
// node it filled itself and emptied again: whether the other runtime stays
// flatter as a node fills, with the floor measured beside each. Level by
// level, one runtime fills the node and is timed, then empties it for the
// other; which goes first alternates between levels, as the first of a
// pair does in BenchmarkSideBySide, so neither always runs on a node just
// emptied by the other. It takes its samples itself, once per process:
//
//	go test ./bench -run '^$' -bench NodeFillsSideBySide -benchtime 1x -v
func BenchmarkNodeFillsSideBySide(b *testing.B) {
	measureOnce(b, func(r *onceResult) {
		sb := newSideBySide(b)
		var runs []*fillRun
		for _, p := range sb.peers {
			runs = append(runs, &fillRun{b: b, cb: sb.cb, p: p, r: r})
		}
		// Deferred, so a failed level still empties the node.
		defer func() {
			for _, f := range runs {
				removeAll(b, f.p, f.running)
			}
		}()
		for li, level := range []int{0, 100, 250} {
			order := runs
			if li%2 == 1 {
				order = []*fillRun{runs[1], runs[0]}
			}
			for _, f := range order {
				f.startLevels([]int{level})
				removeAll(b, f.p, f.running)
				f.running = nil
			}
		}
		var table strings.Builder
		for _, f := range runs {
			table.WriteString(f.table.String())
		}
		r.logf(b, "\n%s", table.String())
	})
}

// fillRun is one pass of BenchmarkNodeFills.
type fillRun struct {
	b       *testing.B
	cb      *containerBench
	p       criPeer
	running []*podRun
	table   strings.Builder
	r       *onceResult
	// empty is the median pod start on the empty node, the first level's.
	empty time.Duration
}

func (f *fillRun) report(v float64, unit string) { f.r.report(f.b, v, unit) }

// startLevels fills the node to each level and times fillSamples pod
// starts there, each pod removed again untimed, alternating with the
// floor (netns + CNI ADD + `runc run -d`, no daemon): the kernel and the
// CNI plugins slow down as a node fills too, and the floor tells that
// apart from floe's own growth.
func (f *fillRun) startLevels(levels []int) {
	ctx := context.Background()
	if f.table.Len() == 0 {
		fmt.Fprintf(&f.table, "%-44s %9s %9s %9s %9s %9s %7s   %s\n", "pod start (ms)", "median", "p90", "/empty", "floor", "/floor", "mounts", "RunPodSandbox, CreateContainer, StartContainer medians")
	}
	for _, level := range levels {
		f.running = fill(f.b, f.p, f.cb.image, f.running, level)
		var ds, floor []time.Duration
		// Which call grows, if the start does.
		calls := map[string][]time.Duration{}
		for range fillSamples {
			id, bundle, netns := floorBundle(f.b)
			start := time.Now()
			undo := f.cb.floor(f.b, id, bundle, netns)
			floor = append(floor, time.Since(start))
			undo()
			r := &podRun{}
			start = time.Now()
			last := start
			err := f.p.startPodTimed(ctx, r, f.cb.image, func(call string) {
				calls[call] = append(calls[call], time.Since(last))
				last = time.Now()
			})
			ds = append(ds, time.Since(start))
			removeAll(f.b, f.p, []*podRun{r})
			if err != nil {
				f.b.Fatalf("pod start with %d pods running: %v", level, err)
			}
		}
		if f.empty == 0 {
			f.empty = median(ds)
		}
		// The host's mount table, which every runc run copies and detaches:
		// BenchmarkFloorAsHostFills shows what it costs.
		fmt.Fprintf(&f.table, "%-44s %9.1f %9.1f %9.2f %9.1f %9.2f %7d   %.1f, %.1f, %.1f\n", fmt.Sprintf("%s with %d pods running", f.p.name, level),
			ms(median(ds)), ms(pct(ds, 90)), ratio(median(ds), f.empty), ms(median(floor)), ratio(median(ds), median(floor)), hostMounts(f.b),
			ms(median(calls["RunPodSandbox"])), ms(median(calls["CreateContainer"])), ms(median(calls["StartContainer"])))
		f.report(ratio(median(ds), f.empty), fmt.Sprintf("%s-start-%dpods/empty", f.p.name, level))
		f.report(ratio(median(ds), median(floor)), fmt.Sprintf("%s-start-%dpods/floor", f.p.name, level))
	}
}

// queries times the kubelet's frequent read calls on the full node.
func (f *fillRun) queries(total int) {
	ctx, p, running := context.Background(), f.p, f.running
	fmt.Fprintf(&f.table, "%-44s %9s %9s %9s   %s\n", fmt.Sprintf("with %d containers (ms)", total), "median", "p90", "p99", "in floe: median, p99")
	calls := []struct {
		name string
		call func(j int) error
	}{
		// No work at all: what the transport and a busy machine add to
		// any call, the floor of the others' p99.
		{"Version (no work)", func(int) error {
			_, err := p.rt.Version(ctx, &runtimeapi.VersionRequest{})
			return err
		}},
		{"ListPodSandbox", func(int) error {
			_, err := p.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
			return err
		}},
		{"ListContainers", func(int) error {
			_, err := p.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
			return err
		}},
		{"ListContainers (one pod)", func(j int) error {
			_, err := p.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: running[j%len(running)].pod}})
			return err
		}},
		{"ContainerStatus", func(j int) error {
			_, err := p.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: running[j%len(running)].container})
			return err
		}},
	}
	for _, c := range calls {
		var ds []time.Duration
		logged := len(f.cb.d.Log())
		for j := range fillCalls {
			start := time.Now()
			if err := c.call(j); err != nil {
				f.b.Fatalf("%s: %v", c.name, err)
			}
			ds = append(ds, time.Since(start))
		}
		// The daemon's own time, from its debug line per RPC: what the
		// client and the transport add is the rest.
		var in []time.Duration
		method := "RuntimeService/" + strings.Fields(c.name)[0] + " "
		for _, l := range strings.Split(f.cb.d.Log()[logged:], "\n") {
			if strings.Contains(l, `msg=rpc`) && strings.Contains(l, method) {
				if d, ok := logDurations(l)["took"]; ok {
					in = append(in, d)
				}
			}
		}
		inFloe := "-"
		if len(in) > 0 {
			inFloe = fmt.Sprintf("%.2f, %.2f", ms(median(in)), ms(pct(in, 99)))
		}
		fmt.Fprintf(&f.table, "%-44s %9.2f %9.2f %9.2f   %s\n", c.name, ms(median(ds)), ms(pct(ds, 90)), ms(pct(ds, 99)), inFloe)
		f.report(ms(pct(ds, 99)), strings.ReplaceAll(c.name, " ", "")+"-p99-ms")
	}
}

// restart stops floe with every container running and times its start.
func (f *fillRun) restart(total int) {
	serve, listed := restartTime(f.b, f.cb, total)
	f.p = criPeer{"floe", f.cb.d.Runtime, f.cb.d.Images} // the restarted daemon's connection
	fmt.Fprintf(&f.table, "%-44s %9.0f ms\n", fmt.Sprintf("restart until Version answers (%d pods)", len(f.running)), ms(serve))
	fmt.Fprintf(&f.table, "%-44s %9.0f ms\n", fmt.Sprintf("restart until all %d containers listed", total), ms(listed))
	f.report(ms(serve), "restart-serve-ms")
	f.report(ms(listed), "restart-listed-ms")
}

// fill starts pods (5 at a time) until want run.
func fill(b *testing.B, p criPeer, image string, running []*podRun, want int) []*podRun {
	ctx := context.Background()
	for len(running) < want {
		batch := min(5, want-len(running))
		rs := make([]*podRun, batch)
		errs := make([]error, batch)
		parallel(batch, func(j int) {
			rs[j] = &podRun{}
			errs[j] = p.startPod(ctx, rs[j], image)
		})
		running = append(running, rs...)
		for _, err := range errs {
			if err != nil {
				b.Fatalf("fill to %d pods: %v", want, err)
			}
		}
	}
	return running
}

// addContainer creates and starts one more container in r's pod.
func addContainer(ctx context.Context, p criPeer, r *podRun, image string) (string, error) {
	c, err := p.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: r.pod, SandboxConfig: r.cfg,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "second"},
			Image:    &runtimeapi.ImageSpec{Image: image},
			Command:  []string{"sleep", "1000"},
		}})
	if err != nil {
		return "", err
	}
	if _, err := p.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		return "", err
	}
	return c.ContainerId, nil
}

// removeAll stops and removes pods, 10 at a time.
func removeAll(b *testing.B, p criPeer, rs []*podRun) {
	ctx := context.Background()
	for i := 0; i < len(rs); i += 10 {
		batch := rs[i:min(i+10, len(rs))]
		parallel(len(batch), func(j int) {
			if batch[j].pod == "" {
				return
			}
			if _, err := p.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: batch[j].pod}); err != nil {
				b.Errorf("StopPodSandbox: %v", err)
			}
			if _, err := p.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: batch[j].pod}); err != nil {
				b.Errorf("RemovePodSandbox: %v", err)
			}
		})
	}
}

// restartTime stops floe with its containers running and starts it again:
// the time until it answers Version, and until ListContainers shows all
// of them again.
func restartTime(b *testing.B, cb *containerBench, want int) (serve, listed time.Duration) {
	cb.d.StopLeavingContainers()
	start := time.Now()
	cb.d.Start()
	serve = time.Since(start)
	for {
		resp, err := cb.d.Runtime.ListContainers(context.Background(), &runtimeapi.ListContainersRequest{})
		if err == nil && len(resp.Containers) >= want {
			return serve, time.Since(start)
		}
		if time.Since(start) > time.Minute {
			b.Fatalf("after a restart floe lists %d of %d containers: %v", len(resp.GetContainers()), want, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
