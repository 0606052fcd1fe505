package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recordingTB records what the harness reports instead of failing the
// test that runs it.
type recordingTB struct {
	testing.TB
	errors []string
}

func (r *recordingTB) Helper()                         {}
func (r *recordingTB) Logf(format string, args ...any) {}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// A daemon whose log has a recovered handler panic (or a runtime panic)
// fails the test at its teardown, each panic once, even across restarts
// (the log grows); a clean log does not.
func TestDaemonTeardownFailsOnLoggedPanic(t *testing.T) {
	rec := &recordingTB{TB: t}
	d := &Daemon{t: rec, LogPath: filepath.Join(t.TempDir(), "floe.log")}
	write := func(s string) {
		f, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.WriteString(s)
	}
	write("time=2026-01-01T00:00:00Z level=DEBUG msg=rpc method=/runtime.v1.RuntimeService/Version\n")
	d.checkNoPanics()
	if len(rec.errors) != 0 {
		t.Fatalf("a clean log failed the test: %v", rec.errors)
	}
	write(`time=2026-01-01T00:00:01Z level=ERROR msg="panic in RPC handler" method=/runtime.v1.RuntimeService/RunPodSandbox panic="nil map"` + "\n")
	d.checkNoPanics()
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "RunPodSandbox") {
		t.Fatalf("a logged handler panic: errors = %v, want one naming it", rec.errors)
	}
	d.checkNoPanics()
	if len(rec.errors) != 1 {
		t.Fatalf("the same panic was reported again: %v", rec.errors)
	}
	write("panic: runtime error: index out of range\n\ngoroutine 1 [running]:\n")
	d.checkNoPanics()
	if len(rec.errors) != 2 {
		t.Fatalf("a runtime panic that crashed the daemon: errors = %v", rec.errors)
	}
}

func TestPanicLines(t *testing.T) {
	log := strings.Join([]string{
		`level=ERROR msg="panic in streaming RPC handler" method=/runtime.v1.RuntimeService/GetContainerEvents`,
		`level=WARN msg=rpc err="exec: sh -c 'echo panic: no'"`, // not at a line start
		`panic: boom [recovered]`,
		`level=INFO msg="no panics here"`,
	}, "\n")
	if got := PanicLines(log); len(got) != 2 {
		t.Errorf("PanicLines = %q, want the streaming panic and the runtime panic", got)
	}
}

func TestSumSeries(t *testing.T) {
	exposition := `# HELP floe_cri_panics_total Panics recovered.
# TYPE floe_cri_panics_total counter
floe_cri_panics_total{method="RunPodSandbox"} 2
floe_cri_panics_total{method="Version"} 1
floe_cri_panics_totally_different 7
floe_cri_requests_total{code="OK",method="Version"} 9
`
	n, err := sumSeries(strings.NewReader(exposition), panicCounter)
	if err != nil || n != 3 {
		t.Errorf("sumSeries = %v, %v; want 3", n, err)
	}
}
