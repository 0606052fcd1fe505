package sandbox

import (
	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/objects"
	"github.com/floe-cri/floe/internal/store"
)

// A sandbox's record moves through these states; update refuses any
// other change of State (an update that keeps the state, e.g. recording
// the network or a new config, is always allowed):
//
//	RunPodSandbox
//	      |
//	      v     namespaces, files,          StopPodSandbox, or its
//	 [creating] network all made  [ready]  namespaces lost in a reboot
//	      | ----------------------->  | ----------------------> [notready]
//	      |                                                        |
//	      | creation failed or                  RemovePodSandbox   |
//	      | interrupted by a crash              (stops it first)   |
//	      v                                                        |
//	  (removed) <--------------------------------------------------+
//
// "creating" is seen only by the creating goroutine and, after a crash,
// by Restore; "removed" is never stored: the record is deleted.
var transitions = objects.Transitions[State]{
	StateCreating: {StateReady, stateRemoved},
	StateReady:    {StateNotReady},
	StateNotReady: {stateRemoved},
}

// stateRemoved is the state update is asked for to delete a record.
const stateRemoved State = "removed"

// schema is how the object table handles sandbox records.
func schema() objects.Schema[Sandbox] {
	return objects.Schema[Sandbox]{
		Kind: "pod sandbox", IDField: "pod_sandbox_id", Bucket: store.Sandboxes,
		Key:     func(sb *Sandbox) string { return sb.Spec.reservationKey() },
		Clone:   (*Sandbox).clone,
		Hidden:  func(sb *Sandbox) bool { return sb.State == StateCreating },
		Removed: func(sb *Sandbox) bool { return sb.State == stateRemoved },
		Check: func(cur, next *Sandbox) error {
			if !transitions.Allowed(cur.State, next.State) {
				return errdefs.FailedPrecondition("pod sandbox %s is %s; it cannot become %s", cur.ID, cur.State, next.State)
			}
			return nil
		},
	}
}

// update is the one way a sandbox's record changes (see
// objects.Table.Update). Callers that also hold the sandbox's operation
// lock take that first.
func (m *Manager) update(id string, fn func(*Sandbox) error) (*Sandbox, error) {
	return m.table.Update(id, fn)
}

// save records the progress of a creation (its local copy sb).
func (m *Manager) save(sb *Sandbox) error {
	_, err := m.update(sb.ID, func(r *Sandbox) error {
		*r = *sb.clone()
		return nil
	})
	return err
}

// removed is the update that deletes a sandbox's record.
func removed(sb *Sandbox) error {
	sb.State = stateRemoved
	return nil
}
