package hooks

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func writeHook(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// hookJSON is a 1.0.0 hook file running bin with the given when and stages.
func hookJSON(bin, when, stages string) string {
	return `{"version":"1.0.0","hook":{"path":"` + bin + `","args":["` + bin + `","x"],"timeout":5},"when":` + when + `,"stages":` + stages + `}`
}

func TestLoadMasksByNameSkipsInvalidAndOrdersCaseInsensitively(t *testing.T) {
	bin, _ := os.Executable()
	low, high := t.TempDir(), t.TempDir()
	writeHook(t, low, "10-vendor.json", hookJSON(bin, `{"always":true}`, `["prestart"]`))
	writeHook(t, low, "20-masked-by-bad.json", hookJSON(bin, `{"always":true}`, `["poststop"]`))
	writeHook(t, low, "B-upper.json", hookJSON(bin, `{"always":true}`, `["poststart"]`))
	writeHook(t, low, "a-lower.json", hookJSON(bin, `{"always":true}`, `["poststart"]`))
	writeHook(t, low, "README.md", "not a hook")
	// The later directory replaces 10-vendor (now createRuntime) and
	// masks 20-masked-by-bad with a file that does not parse.
	writeHook(t, high, "10-vendor.json", hookJSON(bin, `{"always":true}`, `["createRuntime"]`))
	writeHook(t, high, "20-masked-by-bad.json", `{"version":"1.0.0",`)
	writeHook(t, high, "30-missing-binary.json", hookJSON("/nonexistent/hook", `{"always":true}`, `["prestart"]`))
	writeHook(t, high, "40-bad-stage.json", hookJSON(bin, `{"always":true}`, `["prerun"]`))
	writeHook(t, high, "50-bad-regexp.json", hookJSON(bin, `{"commands":["("]}`, `["prestart"]`))
	writeHook(t, high, "60-version.json", strings.Replace(hookJSON(bin, `{"always":true}`, `["prestart"]`), "1.0.0", "2.0.0", 1))

	var logs bytes.Buffer
	s := Load([]string{filepath.Join(t.TempDir(), "absent"), low, high}, slog.New(slog.NewTextHandler(&logs, nil)))
	var names []string
	for _, h := range s.Hooks() {
		names = append(names, h.Name)
	}
	if want := []string{"10-vendor.json", "a-lower.json", "B-upper.json"}; !slices.Equal(names, want) {
		t.Fatalf("hooks %v, want %v", names, want)
	}
	if got := s.Hooks()[0]; got.Path != filepath.Join(high, "10-vendor.json") || !slices.Equal(got.Stages(), []string{"createRuntime"}) {
		t.Errorf("10-vendor.json = %s %v, want the later directory's", got.Path, got.Stages())
	}
	for _, bad := range []string{"20-masked-by-bad.json", "30-missing-binary.json", "40-bad-stage.json", "50-bad-regexp.json", "60-version.json"} {
		if !strings.Contains(logs.String(), filepath.Join(high, bad)) {
			t.Errorf("no warning naming %s:\n%s", bad, logs.String())
		}
	}
	// The handler logs from Info up: an absent directory is only a debug line.
	if strings.Contains(logs.String(), "README") || strings.Contains(logs.String(), "absent") {
		t.Errorf("non-hook file or absent directory warned about:\n%s", logs.String())
	}
}

func TestApplyMatchesConditionsIntoNamedStages(t *testing.T) {
	bin, _ := os.Executable()
	dir := t.TempDir()
	writeHook(t, dir, "01-annot.json", hookJSON(bin, `{"annotations":{"^example\\.com/gpu$":"^(yes|true)$"}}`, `["prestart","poststop"]`))
	writeHook(t, dir, "02-cmd.json", hookJSON(bin, `{"commands":[".*/sleep$"]}`, `["createContainer","startContainer"]`))
	writeHook(t, dir, "03-binds.json", hookJSON(bin, `{"hasBindMounts":true}`, `["poststart"]`))
	writeHook(t, dir, "04-all.json", hookJSON(bin, `{"always":true,"annotations":{"tier":"web"}}`, `["createRuntime"]`))
	s := Load([]string{dir}, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))

	cases := []struct {
		name  string
		args  []string
		ann   map[string]string
		binds bool
		want  []string
	}{
		{"none", []string{"/bin/true"}, map[string]string{"example.com/gpu": "no"}, false, nil},
		{"annotation", []string{"/bin/true"}, map[string]string{"example.com/gpu": "yes"}, false, []string{"01-annot.json"}},
		{"command", []string{"/bin/sleep", "1"}, nil, false, []string{"02-cmd.json"}},
		{"binds", []string{"sh"}, nil, true, []string{"03-binds.json"}},
		// Every condition of a hook must match: always alone is not enough.
		{"always-and-annotation", []string{"sh"}, map[string]string{"tier": "web"}, false, []string{"04-all.json"}},
		{"always-without-annotation", []string{"sh"}, map[string]string{"tier": "db"}, false, nil},
	}
	for _, c := range cases {
		spec := &specs.Spec{Process: &specs.Process{Args: c.args}}
		added, err := s.Apply(spec, c.ann, c.binds)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.Equal(added, c.want) {
			t.Errorf("%s: added %v, want %v", c.name, added, c.want)
		}
		if c.want == nil && spec.Hooks != nil {
			t.Errorf("%s: hooks set without a match: %+v", c.name, spec.Hooks)
		}
	}

	spec := &specs.Spec{Process: &specs.Process{Args: []string{"/bin/sleep"}}}
	if _, err := s.Apply(spec, map[string]string{"example.com/gpu": "true"}, false); err != nil {
		t.Fatal(err)
	}
	h := spec.Hooks
	if len(h.Prestart) != 1 || len(h.Poststop) != 1 || len(h.CreateContainer) != 1 || len(h.StartContainer) != 1 || len(h.CreateRuntime) != 0 || len(h.Poststart) != 0 {
		t.Fatalf("stages: %+v", h)
	}
	if got := h.Prestart[0]; got.Path != bin || !slices.Equal(got.Args, []string{bin, "x"}) || got.Timeout == nil || *got.Timeout != 5 {
		t.Errorf("hook entry %+v", got)
	}
}

func TestNilSetAddsNothing(t *testing.T) {
	var s *Set
	spec := &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}}
	if added, err := s.Apply(spec, nil, true); err != nil || added != nil || spec.Hooks != nil {
		t.Errorf("nil set: %v %v %+v", added, err, spec.Hooks)
	}
}
