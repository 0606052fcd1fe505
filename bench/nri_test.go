package bench

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/fixtures"
	"github.com/floe-cri/floe/test/harness"
)

// BenchmarkNRIPluginOverhead times RunPodSandbox + CreateContainer on a
// daemon with NRI off and on one with a real plugin connected (the test
// plugin, injecting an environment variable into every container), in
// alternating iterations so both see the same load, and reports the ratio.
//
//	go test ./bench -run '^$' -bench NRIPluginOverhead -benchtime 20x
func BenchmarkNRIPluginOverhead(b *testing.B) {
	harness.RequireRoot(b)
	reg := fixtures.StartRegistry(b, fixtures.RegistryOptions{})
	reg.PushBusybox(b, "busybox:bench")
	ref := reg.Ref("busybox:bench")
	off := harness.StartDaemon(b, harness.Options{RegistriesConf: reg.RegistriesConf(false), ConfigTOML: "[nri]\nenable = false\n"})
	on := harness.StartDaemon(b, harness.Options{RegistriesConf: reg.RegistriesConf(false)})
	for _, d := range []*harness.Daemon{off, on} {
		if _, err := d.Images.PullImage(context.Background(), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
			b.Fatalf("pull: %v", err)
		}
	}
	startPlugin(b, on.NRISocket)

	var offTimes, onTimes []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, d := range []*harness.Daemon{off, on} {
			start := time.Now()
			pod := runAndCreate(b, d, ref)
			took := time.Since(start)
			b.StopTimer()
			if d == off {
				offTimes = append(offTimes, took)
			} else {
				onTimes = append(onTimes, took)
			}
			if b.Failed() {
				b.FailNow()
			}
			if _, err := d.Runtime.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
				b.Fatalf("RemovePodSandbox: %v", err)
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	report(b, "nri-off", offTimes)
	report(b, "nri-plugin", onTimes)
	b.ReportMetric(float64(median(onTimes))/float64(median(offTimes)), "ratio-median")
	b.ReportMetric(float64(pct(onTimes, 90))/float64(pct(offTimes, 90)), "ratio-p90")
}

// runAndCreate is RunPodSandbox + CreateContainer of a busybox sleep.
func runAndCreate(b *testing.B, d *harness.Daemon, image string) string {
	ctx := context.Background()
	cfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "bench", Namespace: "bench", Uid: harness.Short()}}
	resp, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		b.Fatalf("RunPodSandbox: %v", err)
	}
	_, err = d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: resp.PodSandboxId, SandboxConfig: cfg,
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "sleep"}, Image: &runtimeapi.ImageSpec{Image: image},
			Command: []string{"sleep", "1000"}}})
	if err != nil {
		b.Errorf("CreateContainer: %v", err)
	}
	return resp.PodSandboxId
}

// startPlugin runs test/nriplugin against socket until the benchmark
// ends, and waits for its synchronisation.
func startPlugin(b *testing.B, socket string) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, harness.GoBinary(b, "./test/nriplugin"), "--socket", socket, "--env", "NRI_BENCH=1")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); cmd.Wait() })
	synced := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "synchronized") {
				close(synced)
			}
		}
	}()
	select {
	case <-synced:
	case <-time.After(20 * time.Second):
		b.Fatal("NRI plugin was not synchronised within 20s")
	}
}
