package podinit

import (
	"slices"
	"testing"
)

func TestParseShimArgs(t *testing.T) {
	global, pid, id, create, err := parseShimArgs([]string{"--network=host", "--root=/run/runsc", "create", "--bundle", "/b", "--pid-file", "/b/pidfile", "c1"})
	if err != nil || !create || pid != "/b/pidfile" || id != "c1" || !slices.Equal(global, []string{"--network=host", "--root=/run/runsc"}) {
		t.Fatalf("create: %q %q %q %v %v", global, pid, id, create, err)
	}
	if _, pid, _, _, err := parseShimArgs([]string{"create", "--pid-file=/p", "--bundle", "/b", "c2"}); err != nil || pid != "/p" {
		t.Fatalf("--pid-file=: %q %v", pid, err)
	}
	// A global flag with a separate value would be taken for the command:
	// floe never passes one (--root=X), and such a line is not a create.
	for _, args := range [][]string{{"--root", "/r", "create", "--pid-file", "/p", "c"}, {"exec", "-d", "c"}, {"--debug"}} {
		if _, _, _, create, _ := parseShimArgs(args); create {
			t.Errorf("%q taken for a create", args)
		}
	}
	if _, _, _, create, err := parseShimArgs([]string{"create", "--bundle", "/b", "c"}); !create || err == nil {
		t.Errorf("create without a pid file: %v %v", create, err)
	}
}

func TestWithInternalPidFile(t *testing.T) {
	got := withInternalPidFile([]string{"--root=/r", "exec", "--pid-file", "/d/pid", "--process", "/d/p.json", "-d", "c1"})
	want := []string{"--root=/r", "exec", "--internal-pid-file=/d/pid" + InternalPidFileSuffix, "--pid-file", "/d/pid", "--process", "/d/p.json", "-d", "c1"}
	if !slices.Equal(got, want) {
		t.Errorf("exec: %q", got)
	}
	for _, args := range [][]string{{"--root=/r", "kill", "c1", "9"}, {"exec", "c1", "ls"}} {
		if got := withInternalPidFile(args); !slices.Equal(got, args) {
			t.Errorf("%q changed to %q", args, got)
		}
	}
}
