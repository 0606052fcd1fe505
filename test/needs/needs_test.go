package needs

import (
	"strings"
	"testing"
)

// recorder is a testing.TB that records how a helper ended the test
// instead of ending this one.
type recorder struct {
	testing.TB
	failed, skipped string
}

type stop struct{}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = strings.TrimSpace(format)
	panic(stop{})
}
func (r *recorder) Skip(args ...any) {
	r.skipped = "skip"
	panic(stop{})
}

func run(tb testing.TB, f func(testing.TB)) (r *recorder) {
	r = &recorder{TB: tb}
	defer func() {
		if p := recover(); p != nil {
			if _, ok := p.(stop); !ok {
				panic(p)
			}
		}
	}()
	f(r)
	return r
}

func TestMissingSkipsOutsideCIAndFailsInCI(t *testing.T) {
	absent := func(tb testing.TB) { Binary(tb, "/nonexistent/floe-no-such-tool") }

	t.Setenv("CI", "")
	if r := run(t, absent); r.skipped == "" || r.failed != "" {
		t.Errorf("outside CI: skipped=%q failed=%q, want a skip", r.skipped, r.failed)
	}
	t.Setenv("CI", "true")
	if r := run(t, absent); r.failed == "" || r.skipped != "" {
		t.Errorf("CI=true: skipped=%q failed=%q, want a failure", r.skipped, r.failed)
	}
	// Present: neither.
	if r := run(t, func(tb testing.TB) { Binary(tb, "sh") }); r.failed != "" || r.skipped != "" {
		t.Errorf("sh present: skipped=%q failed=%q", r.skipped, r.failed)
	}
	if r := run(t, func(tb testing.TB) { File(tb, "/nonexistent/x", "x") }); r.failed == "" {
		t.Errorf("CI=true, file absent: not a failure")
	}
}
