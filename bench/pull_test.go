// Package bench measures floe's image pull against skopeo, the reference
// containers/image client, on the same host in the same run.
//
//	go test -run '^$' -bench PullVsSkopeo -benchtime 3x ./bench/
//
// Each round pulls a ~200 MB image of five layers of incompressible data
// from a local registry: once through a real `floe serve` (CRI PullImage,
// then RemoveImage so the next round starts from an empty store), once
// with `skopeo copy docker://... containers-storage:...` into a fresh
// empty store. Reported: seconds per pull for each, and floe/skopeo.
package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/fixtures"
	"github.com/floe-cri/floe/test/harness"
	"github.com/floe-cri/floe/test/needs"
)

const (
	layers    = 5
	layerSize = 40 << 20
)

func BenchmarkPullVsSkopeo(b *testing.B) {
	harness.RequireRoot(b)
	needs.Binary(b, "skopeo")
	reg := fixtures.StartRegistry(b, fixtures.RegistryOptions{})
	img := reg.Push(b, "bench/random:1", fixtures.RandomLayers(layers, layerSize, 42))
	b.Logf("image %s: %d layers, %.1f MB compressed", img.Ref, layers, float64(img.Size)/1e6)
	d := harness.StartDaemon(b, harness.Options{RegistriesConf: reg.RegistriesConf(false), ConfigTOML: "log_level = \"info\"\n"})
	work := b.TempDir()

	var floeTotal, skopeoTotal time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		floeTotal += timeFloePull(b, d, img.Ref)
		skopeoTotal += timeSkopeoCopy(b, filepath.Join(work, fmt.Sprint(i)), img.Ref)
	}
	b.StopTimer()
	floeSec := floeTotal.Seconds() / float64(b.N)
	skopeoSec := skopeoTotal.Seconds() / float64(b.N)
	b.ReportMetric(floeSec, "floe-s/pull")
	b.ReportMetric(skopeoSec, "skopeo-s/pull")
	b.ReportMetric(floeSec/skopeoSec, "floe/skopeo")
	b.ReportMetric(float64(img.Size)/1e6/floeSec, "floe-MB/s")
}

func timeFloePull(b *testing.B, d *harness.Daemon, ref string) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	resp, err := d.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	took := time.Since(start)
	if err != nil {
		b.Fatalf("floe pull: %v", err)
	}
	if _, err := d.Images.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: resp.ImageRef}}); err != nil {
		b.Fatalf("floe remove: %v", err)
	}
	return took
}

func timeSkopeoCopy(b *testing.B, dir, ref string) time.Duration {
	root, runroot := filepath.Join(dir, "root"), filepath.Join(dir, "runroot")
	defer func() {
		harness.UnmountUnder(b, dir)
		os.RemoveAll(dir)
	}()
	empty := filepath.Join(dir, "registries.conf")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dest := fmt.Sprintf("containers-storage:[overlay@%s+%s]%s", root, runroot, ref)
	// skopeo keeps root's blob-info cache in /var/lib/containers/cache
	// and has no flag to move it; a private mount namespace with a tmpfs
	// there keeps the host's containers state untouched.
	isolate := `mount -t tmpfs floe-bench /var/lib/containers 2>/dev/null || mount -t tmpfs floe-bench /var/lib || exit 1; exec "$@"`
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "sh", "-c", isolate, "sh",
		"skopeo", "--registries-conf", empty, "copy", "-q", "--src-tls-verify=false", "docker://"+ref, dest)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		b.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	return took
}
