package server

import (
	"syscall"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestSignals(t *testing.T) {
	for s, want := range map[runtimeapi.Signal]syscall.Signal{
		runtimeapi.Signal_SIGNAL_SIGTERM: syscall.SIGTERM, runtimeapi.Signal_SIGNAL_SIGKILL: syscall.SIGKILL,
		runtimeapi.Signal_SIGNAL_SIGUSR1: syscall.SIGUSR1, runtimeapi.Signal_SIGNAL_SIGQUIT: syscall.SIGQUIT,
		runtimeapi.Signal_SIGNAL_SIGCLD: syscall.SIGCHLD, runtimeapi.Signal_SIGNAL_SIGIOT: syscall.SIGABRT,
		runtimeapi.Signal_SIGNAL_SIGRTMIN: 34, runtimeapi.Signal_SIGNAL_SIGRTMINPLUS3: 37, runtimeapi.Signal_SIGNAL_SIGRTMAX: 64,
		runtimeapi.Signal_SIGNAL_SIGRTMAXMINUS2: 62, runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT: 0,
	} {
		got, ok := linuxSignal(s)
		if !ok || got != want {
			t.Errorf("linuxSignal(%v) = %d %v, want %d", s, got, ok, want)
		}
	}
	if _, ok := linuxSignal(runtimeapi.Signal(999)); ok {
		t.Error("unknown enum value accepted")
	}
	// Every named signal maps back to itself (aliases to their canonical name).
	for v, name := range runtimeapi.Signal_name {
		s := runtimeapi.Signal(v)
		sig, ok := linuxSignal(s)
		if !ok {
			t.Errorf("%s has no Linux number", name)
			continue
		}
		if sig == 0 {
			continue
		}
		back, _ := linuxSignal(criSignal(sig))
		if back != sig {
			t.Errorf("%s = %d comes back as %v", name, sig, criSignal(sig))
		}
	}
}
