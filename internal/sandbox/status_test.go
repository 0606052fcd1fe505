package sandbox

import "testing"

func TestTransitionTable(t *testing.T) {
	all := []State{StateCreating, StateReady, StateNotReady, stateRemoved}
	legal := map[[2]State]bool{
		{StateCreating, StateReady}: true, {StateCreating, stateRemoved}: true,
		{StateReady, StateNotReady}: true, {StateNotReady, stateRemoved}: true,
	}
	for _, from := range all[:3] {
		for _, to := range all {
			want := from == to || legal[[2]State{from, to}]
			if got := transitions.Allowed(from, to); got != want {
				t.Errorf("%s -> %s allowed = %v, want %v", from, to, got, want)
			}
		}
	}
	// The schema refuses what the table refuses, with FailedPrecondition.
	s := schema()
	if err := s.Check(&Sandbox{State: StateNotReady}, &Sandbox{State: StateReady}); err == nil {
		t.Error("notready -> ready passed the check")
	}
}
