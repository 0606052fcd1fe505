package images

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.podman.io/image/v5/types"

	"github.com/floe-cri/floe/internal/errdefs"
)

// resolver is a Service with only registry resolution set up.
func resolver(t *testing.T, conf string, defaults []string) *Service {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "registries.conf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return &Service{
		opts: Options{RegistriesConf: p, RegistriesConfDir: filepath.Join(dir, "d"), RegistriesOverride: "/etc/floe/registries.conf", DefaultSearchRegistries: defaults},
		sys:  &types.SystemContext{SystemRegistriesConfPath: p, SystemRegistriesConfDirPath: filepath.Join(dir, "d")},
	}
}

func names(t *testing.T, s *Service, in string) []string {
	t.Helper()
	refs, err := s.candidates(in)
	if err != nil {
		t.Fatalf("candidates(%q): %v", in, err)
	}
	var out []string
	for _, r := range refs {
		out = append(out, r.String())
	}
	return out
}

func TestShortNamesDefaultToDockerHub(t *testing.T) {
	s := resolver(t, "", []string{"docker.io"})
	for in, want := range map[string]string{
		"busybox":             "docker.io/library/busybox:latest",
		"busybox:1.36":        "docker.io/library/busybox:1.36",
		"team/app":            "docker.io/team/app:latest",
		"quay.io/team/app:v1": "quay.io/team/app:v1",
		"localhost/app":       "localhost/app:latest",
		"127.0.0.1:5000/app@sha256:" + strings.Repeat("a", 64): "127.0.0.1:5000/app@sha256:" + strings.Repeat("a", 64),
	} {
		got := names(t, s, in)
		if len(got) != 1 || got[0] != want {
			t.Errorf("candidates(%q) = %v, want [%s]", in, got, want)
		}
	}
}

func TestShortNamesUseRegistriesConfSearchOrder(t *testing.T) {
	s := resolver(t, `unqualified-search-registries = ["reg.example:5000", "docker.io"]`, []string{"ignored.example"})
	got := names(t, s, "busybox")
	want := []string{"reg.example:5000/busybox:latest", "docker.io/library/busybox:latest"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("candidates = %v, want %v", got, want)
	}
}

func TestUnresolvableShortNameSaysWhereToConfigure(t *testing.T) {
	s := resolver(t, "", nil)
	_, err := s.candidates("busybox")
	if errdefs.KindOf(err) != errdefs.KindInvalidArgument {
		t.Fatalf("error kind %v: %v", errdefs.KindOf(err), err)
	}
	for _, want := range []string{"unqualified-search-registries", s.opts.RegistriesConf, "registries.default_search_registries"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "no registries configured") {
		t.Errorf("error is the bare containers/image message: %v", err)
	}
}

func TestPinnedMatchesExactNamesAndPrefixes(t *testing.T) {
	s := &Service{opts: Options{Pinned: []string{"registry.k8s.io/pause:3.10", "reg.example/system/*", "busybox"}}}
	for names, want := range map[string]bool{
		"registry.k8s.io/pause:3.10":       true,
		"registry.k8s.io/pause:3.9":        false,
		"reg.example/system/agent:1":       true,
		"reg.example/other:1":              false,
		"docker.io/library/busybox:latest": true,
	} {
		if got := s.pinned([]string{names}); got != want {
			t.Errorf("pinned(%s) = %v, want %v", names, got, want)
		}
	}
}
