package cdi

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/errdefs"
)

const spec = `cdiVersion: "0.6.0"
kind: "example.com/dev"
devices:
- name: a
  containerEdits:
    env: ["DEV=a"]
    deviceNodes:
    - {path: /dev/example-a, type: c, major: 1, minor: 3}
`

func TestRequestedMergesFieldAndAnnotations(t *testing.T) {
	got, err := Requested("config.CDI_devices", []string{"example.com/dev=a"}, map[string]string{
		"cdi.k8s.io/z": "example.com/dev=c", "cdi.k8s.io/y": "example.com/dev=b,example.com/dev=a", "other": "x"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"example.com/dev=a", "example.com/dev=b", "example.com/dev=c"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := Requested("config.CDI_devices", []string{"nope"}, nil); errdefs.KindOf(err) != errdefs.KindInvalidArgument || !strings.Contains(err.Error(), "config.CDI_devices[0].name") {
		t.Errorf("malformed name: %v", err)
	}
}

func TestCheckAndInject(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "example.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := New([]string{dir, filepath.Join(dir, "missing")})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check([]string{"example.com/dev=a", "example.com/dev=zz"}); errdefs.KindOf(err) != errdefs.KindInvalidArgument || !strings.Contains(err.Error(), "example.com/dev=zz") || strings.Contains(err.Error(), "dev=a,") {
		t.Errorf("unknown device: %v", err)
	}
	if err := r.Check([]string{"example.com/dev=a"}); err != nil {
		t.Fatal(err)
	}
	s := &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{}}
	if err := r.Inject(s, []string{"example.com/dev=a"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.Process.Env, "DEV=a") || len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/example-a" {
		t.Errorf("spec after inject: env %v devices %+v", s.Process.Env, s.Linux.Devices)
	}
	if st := r.Status(); !slices.Equal(st.Devices, []string{"example.com/dev=a"}) || len(st.SpecDirs) != 2 {
		t.Errorf("status %+v", st)
	}
}
