package monitor

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// countingRuntime is a runtime that only appends its arguments to a file,
// so a test can count the runc runs Delete makes.
// A kill writes the exit file, as conmon would when the container dies.
func countingRuntime(t *testing.T) (m *Monitor, calls func() []string) {
	t.Helper()
	return scriptedRuntime(t, func(exits string) string {
		return "if [ \"$1\" = kill ]; then eval id=\\${$(($# - 1))}; printf 137 > " + exits + "/$id; fi\n"
	})
}

// scriptedRuntime is a Monitor whose runtime is a shell script that logs
// each run's arguments and then runs body(exits), exits being the
// monitor's exit dir; calls returns the logged runs.
func scriptedRuntime(t *testing.T, body func(exits string) string) (m *Monitor, calls func() []string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	rt := filepath.Join(dir, "runtime")
	exits := filepath.Join(dir, "exits")
	script := "#!/bin/sh\necho \"$*\" >> " + log + "\n" + body(exits)
	if err := os.WriteFile(rt, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{RuntimePath: rt, ExitDir: exits, SocketDir: filepath.Join(dir, "socks"),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, func() []string {
		data, _ := os.ReadFile(log)
		return strings.Split(strings.TrimSpace(string(data)), "\n")
	}
}

// A container whose conmon is gone (it was stopped before the remove) is
// deleted with one runc run: nothing can recreate it.
func TestDeleteRunsRuntimeOnceWhenConmonIsGone(t *testing.T) {
	m, calls := countingRuntime(t)
	bundle := t.TempDir()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	c := &Container{ID: "c1", Bundle: bundle, ConmonPid: gone.Process.Pid}
	if err := m.Delete(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if got := calls(); len(got) != 1 || !strings.HasSuffix(got[0], "delete --force c1") {
		t.Errorf("runtime runs = %q, want one delete --force c1", got)
	}
}

// A conmon still alive at the delete may be in the middle of `runc create`
// (a creation a crash cut short): Delete waits for it and deletes again.
func TestDeleteAgainWhileConmonLives(t *testing.T) {
	m, calls := countingRuntime(t)
	bundle := t.TempDir()
	// Stands in for conmon: its command line names the bundle.
	conmon := exec.Command("sh", "-c", "sleep 0.3; true", bundle)
	if err := conmon.Start(); err != nil {
		t.Fatal(err)
	}
	defer conmon.Wait()
	c := &Container{ID: "c2", Bundle: bundle, ConmonPid: conmon.Process.Pid}
	start := time.Now()
	if err := m.Delete(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if got := calls(); len(got) < 2 {
		t.Errorf("runtime runs = %q, want a delete after conmon went", got)
	}
	if time.Since(start) < 250*time.Millisecond {
		t.Errorf("Delete returned after %v, before the conmon stand-in exited", time.Since(start))
	}
}

// Stop deletes the stopped container from runc, so the RemoveContainer
// that follows runs no runc at all.
func TestStopDeletesSoDeleteRunsNoRuntime(t *testing.T) {
	m, calls := countingRuntime(t)
	c := &Container{ID: "c3", Bundle: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := m.Stop(ctx, c, syscall.SIGKILL, 0)
	if err != nil || e == nil || e.Code != 137 {
		t.Fatalf("stop: %+v %v", e, err)
	}
	want := []string{"kill --all c3 9", "delete --force c3"}
	if got := calls(); !slices.Equal(got, want) {
		t.Errorf("runtime runs after Stop = %q, want %q", got, want)
	}
	if err := m.Delete(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got := calls(); len(got) != len(want) {
		t.Errorf("Delete after Stop ran the runtime again: %q", got[len(want):])
	}
	if _, err := os.Stat(m.exitFile("c3")); !os.IsNotExist(err) {
		t.Errorf("exit file left after Delete: %v", err)
	}
}

// refusingRuntime is a runtime that records its runs and refuses every
// kill as runsc does for a created container; `delete --force` writes the
// exit file, as conmon does once the forced delete ends the container,
// unless deleteFails.
func refusingRuntime(t *testing.T, deleteFails bool) (m *Monitor, calls func() []string) {
	t.Helper()
	return scriptedRuntime(t, func(exits string) string {
		del := "eval id=\\${$#}; printf 137 > " + exits + "/$id"
		if deleteFails {
			del = "echo 'delete refused too' >&2; exit 1"
		}
		return "case \"$1\" in\nkill) echo 'cannot signal container in state created' >&2; exit 1 ;;\n" +
			"delete) " + del + " ;;\nesac\n"
	})
}

// A container the runtime will not signal is deleted by force: Stop
// returns its exit at once (no grace period spent on a signal that never
// went), and the Delete of RemoveContainer runs no runtime again.
func TestStopDeletesByForceWhatTheRuntimeWillNotSignal(t *testing.T) {
	m, calls := refusingRuntime(t, false)
	c := &Container{ID: "c4", Bundle: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	e, err := m.Stop(ctx, c, syscall.SIGTERM, 30*time.Second)
	if err != nil || e == nil || e.Code != 137 {
		t.Fatalf("stop: %+v %v", e, err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Stop took %v: it waited out the grace period of a signal the runtime refused", took)
	}
	want := []string{"kill c4 15", "kill --all c4 9", "delete --force c4"}
	if got := calls(); !slices.Equal(got, want) {
		t.Errorf("runtime runs after Stop = %q, want %q", got, want)
	}
	if err := m.Delete(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got := calls(); len(got) != len(want) {
		t.Errorf("Delete after Stop ran the runtime again: %q", got[len(want):])
	}
}

// When the forced delete fails too, Stop fails with both refusals.
func TestStopFailsWhenTheForcedDeleteFails(t *testing.T) {
	m, _ := refusingRuntime(t, true)
	c := &Container{ID: "c5", Bundle: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := m.Stop(ctx, c, syscall.SIGKILL, 0)
	if err == nil || !strings.Contains(err.Error(), "in state created") || !strings.Contains(err.Error(), "delete refused too") {
		t.Fatalf("stop: %v, want both the kill's and the delete's error", err)
	}
}
