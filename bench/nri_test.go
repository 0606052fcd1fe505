package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
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
// alternating iterations (each daemon first every other one) so both see
// the same load, and reports the ratio. Every sample checks that the
// plugin's variable is in the container's spec on the NRI daemon (and not
// on the other), so an idle plugin cannot make NRI look free.
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
		// Which goes first alternates, as in BenchmarkSideBySide.
		order := []*harness.Daemon{off, on}
		if i%2 == 1 {
			order = []*harness.Daemon{on, off}
		}
		for _, d := range order {
			start := time.Now()
			pod, ctr := runAndCreate(b, d, ref)
			took := time.Since(start)
			b.StopTimer()
			if b.Failed() {
				b.FailNow()
			}
			// A sample only counts if the plugin really was in the path
			// (and only there): its variable is in the container's spec.
			if injected := specHas(b, d, ctr, nriBenchEnv); injected != (d == on) {
				b.Fatalf("NRI plugin's %s in the spec of a container on the NRI %s daemon: %v", nriBenchEnv, map[bool]string{true: "on", false: "off"}[d == on], injected)
			}
			if d == off {
				offTimes = append(offTimes, took)
			} else {
				onTimes = append(onTimes, took)
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

// nriBenchEnv is the variable the plugin injects into every container.
const nriBenchEnv = "NRI_BENCH=1"

// specHas tells whether the container's OCI spec (ContainerStatus
// verbose info, "runtimeSpec") holds env in its process environment.
func specHas(b *testing.B, d *harness.Daemon, ctr, env string) bool {
	resp, err := d.Runtime.ContainerStatus(context.Background(), &runtimeapi.ContainerStatusRequest{ContainerId: ctr, Verbose: true})
	if err != nil {
		b.Fatalf("ContainerStatus %s: %v", ctr, err)
	}
	var info struct {
		RuntimeSpec struct {
			Process struct{ Env []string } `json:"process"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
		b.Fatalf("ContainerStatus %s verbose info: %v", ctr, err)
	}
	if len(info.RuntimeSpec.Process.Env) == 0 {
		b.Fatalf("ContainerStatus %s verbose info has no runtimeSpec.process.env: %s", ctr, resp.Info["info"])
	}
	return slices.Contains(info.RuntimeSpec.Process.Env, env)
}

// runAndCreate is RunPodSandbox + CreateContainer of a busybox sleep; it
// returns the pod's and the container's ids.
func runAndCreate(b *testing.B, d *harness.Daemon, image string) (string, string) {
	ctx := context.Background()
	cfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "bench", Namespace: "bench", Uid: harness.Short()}}
	resp, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		b.Fatalf("RunPodSandbox: %v", err)
	}
	c, err := d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: resp.PodSandboxId, SandboxConfig: cfg,
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "sleep"}, Image: &runtimeapi.ImageSpec{Image: image},
			Command: []string{"sleep", "1000"}}})
	if err != nil {
		b.Errorf("CreateContainer: %v", err)
	}
	return resp.PodSandboxId, c.GetContainerId()
}

// startPlugin runs test/nriplugin against socket until the benchmark
// ends, and waits for its synchronisation.
func startPlugin(b *testing.B, socket string) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, harness.GoBinary(b, "./test/nriplugin"), "--socket", socket, "--env", nriBenchEnv)
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
