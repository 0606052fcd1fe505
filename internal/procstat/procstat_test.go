package procstat

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func statLine(comm, state string, start string) []byte {
	// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime priority nice threads
	// itrealvalue starttime vsize ...
	rest := "7 " + strings.Repeat("0 ", 17) + start + " 4096 12"
	return []byte("42 (" + comm + ") " + state + " " + rest + "\n")
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		comm, state string
		dead        bool
	}{
		{"sleep", "S", false},
		{"runc:[2:INIT]", "R", false},
		{"a) Z (b", "S", false}, // a name that looks like fields
		{"conmon", "Z", true},
		{"conmon", "X", true},
		{"x", "D", false},
	} {
		st, err := Parse(statLine(tc.comm, tc.state, "123456"))
		if err != nil {
			t.Fatalf("%q: %v", tc.comm, err)
		}
		if st.State != tc.state[0] || st.PPid != 7 || st.StartTime != 123456 || st.Dead() != tc.dead {
			t.Errorf("%q %s: got %c start %d dead %v", tc.comm, tc.state, st.State, st.StartTime, st.Dead())
		}
	}
	for _, bad := range []string{"", "42 sleep S 1 2", "42 (sleep) S 1 2 3", "42 (x) SS " + strings.Repeat("0 ", 20)} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

func TestReadSelfAndGone(t *testing.T) {
	st, err := Read(os.Getpid())
	if err != nil || st.Dead() || st.StartTime == 0 || st.PPid != os.Getppid() {
		t.Fatalf("self: %+v %v", st, err)
	}
	if Gone(os.Getpid()) {
		t.Error("Gone(self)")
	}
	// An exited child not yet waited for is a zombie: gone.
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	for i := 0; i < 200 && !Gone(cmd.Process.Pid); i++ {
		exec.Command("sleep", "0.01").Run()
	}
	if !Gone(cmd.Process.Pid) {
		t.Error("an exited, unreaped child is not Gone")
	}
	if !Gone(1 << 30) {
		t.Error("a pid that cannot exist is not Gone")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(statLine("sleep", "S", "1"))
	f.Add(statLine("a) b (c", "Z", "99"))
	f.Add([]byte("1 () R"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := Parse(data)
		if err == nil && st.State == 0 {
			t.Errorf("parsed %q with no state", data)
		}
	})
}
