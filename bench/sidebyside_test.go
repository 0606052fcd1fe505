package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/fixtures"
	"github.com/floe-cri/floe/test/harness"
)

// criPeer is one runtime driven through the CRI: floe or containerd.
type criPeer struct {
	name   string
	rt     runtimeapi.RuntimeServiceClient
	images runtimeapi.ImageServiceClient
}

// podRun is one pod with one container, as a peer created it.
type podRun struct {
	cfg            *runtimeapi.PodSandboxConfig
	pod, container string
}

// stopTimeout is the grace period StopContainer gets. The container's
// shell exits on SIGTERM, so this is the kubelet's graceful path, never a
// wait for the timeout.
const stopTimeout = 10

// sideBySideOps are the timed steps of one sample, in the kubelet's order.
// Each runs on both peers, one after the other, before the next step.
var sideBySideOps = []struct {
	name string
	run  func(ctx context.Context, p criPeer, r *podRun, image, pullRef string) error
}{
	{"RunPodSandbox+CreateContainer+StartContainer", func(ctx context.Context, p criPeer, r *podRun, image, _ string) error {
		return p.startPod(ctx, r, image)
	}},
	{"StopContainer", func(ctx context.Context, p criPeer, r *podRun, _, _ string) error {
		_, err := p.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: r.container, Timeout: stopTimeout})
		return err
	}},
	{"StopPodSandbox", func(ctx context.Context, p criPeer, r *podRun, _, _ string) error {
		_, err := p.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: r.pod})
		return err
	}},
	{"RemoveContainer", func(ctx context.Context, p criPeer, r *podRun, _, _ string) error {
		_, err := p.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: r.container})
		return err
	}},
	{"RemovePodSandbox", func(ctx context.Context, p criPeer, r *podRun, _, _ string) error {
		_, err := p.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: r.pod})
		return err
	}},
	{"PullImage (busybox, 1 layer, 1 MB gz)", func(ctx context.Context, p criPeer, _ *podRun, _, pullRef string) error {
		_, err := p.images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: pullRef}})
		return err
	}},
}

// startPod is RunPodSandbox + CreateContainer + StartContainer of a pod
// with one busybox shell that sleeps and exits on SIGTERM, as the kubelet
// sends them for a pod without shareProcessNamespace.
func (p criPeer) startPod(ctx context.Context, r *podRun, image string) error {
	return p.startPodTimed(ctx, r, image, func(string) {})
}

// startPodTimed is startPod telling done the name of each call as it
// returns (for BenchmarkStartBreakdown).
func (p criPeer) startPodTimed(ctx context.Context, r *podRun, image string, done func(call string)) error {
	ns := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Ipc: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER}
	uid := harness.Short()
	r.cfg = &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "bench-" + uid, Namespace: "bench", Uid: uid},
		Hostname: "bench",
		Linux:    &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: ns}},
	}
	sb, err := p.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: r.cfg})
	if err != nil {
		return fmt.Errorf("RunPodSandbox: %w", err)
	}
	r.pod = sb.PodSandboxId
	done("RunPodSandbox")
	c, err := p.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: r.pod, SandboxConfig: r.cfg,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "sleep"},
			Image:    &runtimeapi.ImageSpec{Image: image},
			Command:  []string{"sh", "-c", `trap "exit 0" TERM; sleep 1000 & wait`},
			Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: ns}},
		}})
	if err != nil {
		return fmt.Errorf("CreateContainer: %w", err)
	}
	r.container = c.ContainerId
	done("CreateContainer")
	if _, err := p.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: r.container}); err != nil {
		return fmt.Errorf("StartContainer: %w", err)
	}
	done("StartContainer")
	return nil
}

// removeImage deletes the pulled image so the next pull starts from an
// empty store (the layer is in no other image).
func (p criPeer) removeImage(ctx context.Context, ref string) error {
	st, err := p.images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		return err
	}
	if st.Image == nil {
		return nil
	}
	_, err = p.images.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: st.Image.Id}})
	return err
}

// sideBySide is floe and containerd set up to do the same work: the same
// conflist, the busybox image pulled into both, and an image to pull.
type sideBySide struct {
	cb      *containerBench
	ctrd    *containerd
	peers   []criPeer // floe, containerd
	pullRef string
}

// newSideBySide starts the registry, floe and containerd. When the test
// ends, after both are gone, nothing of either may be left on the host.
func newSideBySide(b *testing.B) *sideBySide {
	harness.RequireRoot(b)
	// Registered first, so checked last.
	before := harness.Snapshot(b)
	var ipamDir string
	b.Cleanup(func() { before.AssertNoLeaks(b, ipamDir) })

	cb := newContainerBench(b)
	ipamDir = cb.d.IPAMDir
	// containerd needs a sandbox image: busybox sleeping for ever (it
	// kills the sandbox with SIGKILL). Its layer is busybox's, so it
	// costs no extra unpack.
	pause := fixtures.Busybox(b)
	pause.Config.Entrypoint, pause.Config.Cmd, pause.Config.User = []string{"/bin/sleep", "inf"}, nil, ""
	pauseRef := cb.reg.Push(b, "pause:bench", pause).Ref
	// The pulled image has a layer of its own (busybox plus one small
	// file), so removing it removes the layer and every pull is a full
	// one.
	pullImg := fixtures.Busybox(b)
	pullImg.Layers[0] = append(pullImg.Layers[0], fixtures.File{Path: "etc/bench-pull", Mode: 0o644, Data: []byte("pull\n")})
	pulled := cb.reg.Push(b, "bench/pull:1", pullImg)
	b.Logf("pull image %s: %.2f MB compressed, %d layer", pulled.Ref, float64(pulled.Size)/1e6, len(pulled.Layers))

	ctrd := startContainerd(b, containerdOptions{Conflist: filepath.Join(cb.d.CNIDir, "10-floetest.conflist"),
		RegistryHost: cb.reg.Host, SandboxImage: pauseRef})
	for _, ref := range []string{cb.image, pauseRef} {
		if _, err := ctrd.Images.PullImage(context.Background(), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
			b.Fatalf("containerd pull %s: %v", ref, err)
		}
	}
	return &sideBySide{cb: cb, ctrd: ctrd, pullRef: pulled.Ref,
		peers: []criPeer{{"floe", cb.d.Runtime, cb.d.Images}, {"containerd", ctrd.Runtime, ctrd.Images}}}
}

// BenchmarkSideBySide drives floe and containerd (Debian's 1.6, CRI
// plugin, started here on a private socket with the same CNI conflist and
// the same registry) through the same CRI calls in one run. Each step of
// a sample runs on both runtimes back to back, the first one alternating
// between samples, so both see the same load on a shared machine. The
// floor of a pod start (ip netns add + CNI ADD + `runc run -d`, no daemon)
// is measured in every sample as well.
//
//	go test ./bench -run '^$' -bench SideBySide -benchtime 30x
func BenchmarkSideBySide(b *testing.B) {
	sb := newSideBySide(b)
	cb, peers, ctx := sb.cb, sb.peers, context.Background()
	times := map[string]map[string][]time.Duration{}
	for _, op := range sideBySideOps {
		times[op.name] = map[string][]time.Duration{}
	}
	var floor []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		id, bundle, netns := floorBundle(b)
		start := time.Now()
		undo := cb.floor(b, id, bundle, netns)
		floor = append(floor, time.Since(start))
		undo()
		if b.Failed() {
			b.FailNow()
		}
		order := peers
		if i%2 == 1 {
			order = []criPeer{peers[1], peers[0]}
		}
		runs := map[string]*podRun{}
		for _, p := range order {
			runs[p.name] = &podRun{}
		}
		b.StartTimer()
		for _, op := range sideBySideOps {
			for _, p := range order {
				opCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				start := time.Now()
				err := op.run(opCtx, p, runs[p.name], cb.image, sb.pullRef)
				took := time.Since(start)
				cancel()
				if err != nil {
					b.Fatalf("%s %s: %v", p.name, op.name, err)
				}
				times[op.name][p.name] = append(times[op.name][p.name], took)
			}
		}
		b.StopTimer()
		for _, p := range order {
			if err := p.removeImage(ctx, sb.pullRef); err != nil {
				b.Fatalf("%s remove %s: %v", p.name, sb.pullRef, err)
			}
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.Log("\n" + sideBySideTable(times, floor))
	start := times[sideBySideOps[0].name]["floe"]
	b.ReportMetric(ratio(median(start), median(floor)), "start-floe/floor-median")
	b.ReportMetric(ratio(pct(start, 90), pct(floor, 90)), "start-floe/floor-p90")
	for _, op := range sideBySideOps {
		short := strings.Fields(op.name)[0]
		b.ReportMetric(ratio(median(times[op.name]["floe"]), median(times[op.name]["containerd"])), short+"-floe/containerd")
	}
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// sideBySideTable formats medians and p90s of both runtimes, their
// ratios, and the floor with floe's pod start against it.
func sideBySideTable(times map[string]map[string][]time.Duration, floor []time.Duration) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-46s %21s %21s %17s\n", fmt.Sprintf("operation (n=%d, ms)", len(floor)), "floe median / p90", "containerd med / p90", "floe/ctrd med p90")
	for _, op := range sideBySideOps {
		f, c := times[op.name]["floe"], times[op.name]["containerd"]
		fmt.Fprintf(&sb, "%-46s %10.1f / %8.1f %10.1f / %8.1f %8.2f %8.2f\n", op.name,
			ms(median(f)), ms(pct(f, 90)), ms(median(c)), ms(pct(c, 90)),
			ratio(median(f), median(c)), ratio(pct(f, 90), pct(c, 90)))
	}
	start := times[sideBySideOps[0].name]
	fmt.Fprintf(&sb, "%-46s %10.1f / %8.1f\n", "floor: ip netns add + CNI ADD + runc run -d", ms(median(floor)), ms(pct(floor, 90)))
	fmt.Fprintf(&sb, "%-46s %10.2f / %8.2f %10.2f / %8.2f\n", "pod start / floor (median / p90)",
		ratio(median(start["floe"]), median(floor)), ratio(pct(start["floe"], 90), pct(floor, 90)),
		ratio(median(start["containerd"]), median(floor)), ratio(pct(start["containerd"], 90), pct(floor, 90)))
	return sb.String()
}

// BenchmarkPodsAtOnceVsContainerd starts 30 pods (one container each) at
// once on floe and on containerd, one runtime after the other (which one
// goes first alternates), atOnceSamples times each, and compares the wall
// times; the pods are removed, untimed, before the other runtime's turn.
// It takes its samples once per process whatever -benchtime says:
//
//	go test ./bench -run '^$' -bench PodsAtOnceVsContainerd -benchtime 1x
func BenchmarkPodsAtOnceVsContainerd(b *testing.B) {
	measureOnce(b, func(r *onceResult) {
		const n = 30
		sb := newSideBySide(b)
		walls := map[string][]time.Duration{}
		for i := range atOnceSamples {
			order := sb.peers
			if i%2 == 1 {
				order = []criPeer{sb.peers[1], sb.peers[0]}
			}
			for _, p := range order {
				walls[p.name] = append(walls[p.name], podsAtOnce(b, p, n, sb.cb.image))
			}
		}
		f, c := walls["floe"], walls["containerd"]
		r.logf(b, "\n%d pods at once, wall ms (n=%d): floe median %.0f p90 %.0f, containerd median %.0f p90 %.0f, floe/containerd %.2f",
			n, len(f), ms(median(f)), ms(pct(f, 90)), ms(median(c)), ms(pct(c, 90)), ratio(median(f), median(c)))
		r.report(b, ms(median(f)), "floe-wall-ms")
		r.report(b, ms(median(c)), "containerd-wall-ms")
		r.report(b, ratio(median(f), median(c)), "floe/containerd")
	})
}

// atOnceSamples is how often each runtime starts its pods at once.
const atOnceSamples = 4

// podsAtOnce starts n pods at once on p, returns the wall time and
// removes them (untimed).
func podsAtOnce(b *testing.B, p criPeer, n int, image string) time.Duration {
	runs := make([]*podRun, n)
	errs := make([]error, n)
	wall := parallel(n, func(j int) {
		runs[j] = &podRun{}
		errs[j] = p.startPod(context.Background(), runs[j], image)
	})
	removeAll(b, p, runs)
	for _, err := range errs {
		if err != nil {
			b.Fatalf("%s: %d pods at once: %v", p.name, n, err)
		}
	}
	return wall
}
