package container

import (
	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/objects"
	"github.com/floe-cri/floe/internal/store"
)

// A container's record moves through these states; Manager.update refuses
// any other change of State (an update that keeps the state, e.g. new
// resources, is always allowed):
//
//	CreateContainer
//	      |
//	      v      runtime created it          StartContainer
//	 [creating] ------------------> [created] ------------> [running]
//	      |                             |                       |
//	      |                             | exited or stopped     | exited or
//	      |                             | before any start      | stopped
//	      |                             v                       |
//	      |                         [exited] <------------------+
//	      |
//	      | creation failed or        created, running or exited:
//	      | interrupted by a crash    RemoveContainer
//	      |                                   |
//	      |                                   v
//	      |                             [removing]
//	      |                                   | rootfs and bundle
//	      v                                   | deleted (remover)
//	  (removed) <-----------------------------+
//
// "creating" is seen only by the creating goroutine and, after a crash,
// by Restore. "removing" is a container RemoveContainer has answered
// for: its process is gone and its name is free, and the remover (see
// remover.go) still deletes its writable layer and bundle; like
// "creating" it is hidden from Get and List. "removed" is never stored:
// the record is deleted.
var transitions = objects.Transitions[State]{
	StateCreating: {StateCreated, stateRemoved},
	StateCreated:  {StateRunning, StateExited, stateRemoving},
	StateRunning:  {StateExited, stateRemoving},
	StateExited:   {stateRemoving},
	stateRemoving: {stateRemoved},
}

// stateRemoving is a removal answered whose files are still being
// deleted; stateRemoved is the state update is asked for to delete a
// record.
const (
	stateRemoving State = "removing"
	stateRemoved  State = "removed"
)

// TransitionError is an illegal change of a container's state: a bug or a
// race the caller lost (e.g. starting a container that exited meanwhile).
// Its kind is FailedPrecondition.
type TransitionError struct {
	ID       string
	From, To State
	err      error
}

func newTransitionError(id string, from, to State) *TransitionError {
	return &TransitionError{ID: id, From: from, To: to,
		err: errdefs.FailedPrecondition("container %s is %s; it cannot become %s", id, from, to)}
}

func (e *TransitionError) Error() string { return e.err.Error() }
func (e *TransitionError) Unwrap() error { return e.err }

// eventFor is the lifecycle event a state change emits, if any. An
// interrupted creation leaves without one: nobody saw it created.
func eventFor(from, to State) (EventType, bool) {
	if from == to {
		return 0, false
	}
	switch to {
	case StateCreated:
		return EventCreated, true
	case StateRunning:
		return EventStarted, true
	case StateExited:
		return EventStopped, true
	case stateRemoving:
		// The container is gone for the kubelet once RemoveContainer
		// answers; the remover's final deletion says nothing new.
		return EventDeleted, true
	}
	return 0, false
}

// errUnchanged lets an update function decline to change anything.
var errUnchanged = objects.ErrUnchanged

// schema is how the object table handles container records: its Check
// is the transitions table above and its Changed emits the lifecycle
// events.
func (m *Manager) schema() objects.Schema[Container] {
	return objects.Schema[Container]{
		Kind: "container", IDField: "container_id", Bucket: store.Containers,
		Key:     func(c *Container) string { return reservationKey(c.SandboxID, &c.Spec) },
		Clone:   (*Container).clone,
		Hidden:  func(c *Container) bool { return c.State == StateCreating || c.State == stateRemoving },
		Removed: func(c *Container) bool { return c.State == stateRemoved },
		Check: func(cur, next *Container) error {
			if !transitions.Allowed(cur.State, next.State) {
				return newTransitionError(cur.ID, cur.State, next.State)
			}
			return nil
		},
		Changed: m.changed,
	}
}

// changed emits the event of a transition.
func (m *Manager) changed(cur, next *Container) {
	t, ok := eventFor(cur.State, next.State)
	if !ok {
		return
	}
	// A deleted container is reported as it was last recorded.
	snapshot := next
	if next.State == stateRemoving {
		snapshot = cur
	}
	m.emit(t, snapshot)
}

// update is the one way a container's record changes (see
// objects.Table.Update): under the record's lock, checked against the
// transitions table, persisted, then the event. Callers that also hold
// the container's operation lock take that first.
func (m *Manager) update(id string, fn func(*Container) error) (*Container, error) {
	return m.table.Update(id, fn)
}
