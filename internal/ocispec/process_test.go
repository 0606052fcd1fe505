package ocispec

import (
	"slices"
	"syscall"
	"testing"

	"github.com/floe-cri/floe/internal/errdefs"
)

func TestArgv(t *testing.T) {
	img := ImageConfig{Entrypoint: []string{"/ep", "-x"}, Cmd: []string{"c1", "c2"}}
	for _, tc := range []struct {
		name          string
		img           ImageConfig
		command, args []string
		want          []string
	}{
		{"image only", img, nil, nil, []string{"/ep", "-x", "c1", "c2"}},
		{"args replace cmd", img, nil, []string{"a"}, []string{"/ep", "-x", "a"}},
		{"command drops entrypoint and cmd", img, []string{"/bin/sh"}, nil, []string{"/bin/sh"}},
		{"command and args", img, []string{"/bin/sh"}, []string{"-c", "x"}, []string{"/bin/sh", "-c", "x"}},
		{"cmd only image", ImageConfig{Cmd: []string{"/bin/sh"}}, nil, nil, []string{"/bin/sh"}},
		{"args without entrypoint", ImageConfig{Cmd: []string{"/bin/sh"}}, nil, []string{"/bin/true"}, []string{"/bin/true"}},
		{"entrypoint only", ImageConfig{Entrypoint: []string{"/ep"}}, nil, nil, []string{"/ep"}},
	} {
		got, err := Argv(tc.img, tc.command, tc.args)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := Argv(ImageConfig{}, nil, nil); errdefs.KindOf(err) != errdefs.KindInvalidArgument {
		t.Errorf("empty command: %v", err)
	}
}

func TestMergeEnv(t *testing.T) {
	got := MergeEnv([]string{"PATH=/bin", "A=1", "B=2"}, []string{"B=20", "C=3", "A=10"})
	want := []string{"PATH=/bin", "A=10", "B=20", "C=3"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := MergeEnv(nil, []string{"X=1", "X=2"}); !slices.Equal(got, []string{"X=2"}) {
		t.Errorf("duplicate request keys: %q", got)
	}
}

func TestWorkingDir(t *testing.T) {
	for _, tc := range []struct{ img, req, want string }{
		{"", "", "/"}, {"/img", "", "/img"}, {"/img", "/req", "/req"},
	} {
		if got, err := WorkingDir(ImageConfig{WorkingDir: tc.img}, tc.req); err != nil || got != tc.want {
			t.Errorf("WorkingDir(%q,%q) = %q, %v", tc.img, tc.req, got, err)
		}
	}
	if _, err := WorkingDir(ImageConfig{}, "rel"); err == nil {
		t.Error("relative working dir accepted")
	}
}

func TestStopSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"": syscall.SIGTERM, "SIGKILL": syscall.SIGKILL, "quit": syscall.SIGQUIT, "2": syscall.SIGINT, "SIGRTMIN+3": 0} {
		got, err := StopSignal(in)
		if want == 0 {
			if err == nil && got == 0 {
				t.Errorf("%q: no signal and no error", in)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("StopSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := StopSignal("SIGBOGUS"); err == nil {
		t.Error("bogus signal accepted")
	}
}
