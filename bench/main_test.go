package bench

import (
	"fmt"
	"os"
	"testing"

	"go.podman.io/storage/pkg/reexec"

	"github.com/floe-cri/floe/test/harness"
)

// TestMain holds the host test lock while benchmarks run, so no other
// package's tests share the machine's namespaces, cgroups and CPU with a
// measurement, and removes the floe binary the harness built.
func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	unlock := harness.MustLockHost()
	code := m.Run()
	unlock()
	harness.RemoveBinary()
	os.Exit(code)
}

// onceResults are the measurements of benchmarks that take their own
// samples, by benchmark name.
var onceResults = map[string]*onceResult{}

// onceResult is what such a benchmark reported.
type onceResult struct {
	metrics map[string]float64
	log     []string
}

func (r *onceResult) report(b *testing.B, v float64, unit string) {
	r.metrics[unit] = v
	b.ReportMetric(v, unit)
}

func (r *onceResult) logf(b *testing.B, format string, args ...any) {
	r.log = append(r.log, fmt.Sprintf(format, args...))
	b.Log(r.log[len(r.log)-1])
}

// measureOnce runs measure the first time the benchmark runs in this
// process and only replays its metrics and log in the testing package's
// later runs of it (b.N = 1 first, then the -benchtime count): such
// benchmarks are too slow to repeat, and this lets one command with
// -benchtime 30x run them beside the per-sample ones.
func measureOnce(b *testing.B, measure func(r *onceResult)) {
	if r, ok := onceResults[b.Name()]; ok {
		for unit, v := range r.metrics {
			b.ReportMetric(v, unit)
		}
		for _, l := range r.log {
			b.Log(l)
		}
		return
	}
	r := &onceResult{metrics: map[string]float64{}}
	measure(r)
	if !b.Failed() {
		onceResults[b.Name()] = r
	}
}
