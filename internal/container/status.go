package container

import (
	"errors"
	"fmt"
	"slices"

	"github.com/floe-cri/floe/internal/errdefs"
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
//	      v                                   |
//	  (removed) <-----------------------------+
//
// "creating" is seen only by the creating goroutine and, after a crash,
// by Restore; "removed" is never stored: the record is deleted.
var transitions = map[State][]State{
	StateCreating: {StateCreated, stateRemoved},
	StateCreated:  {StateRunning, StateExited, stateRemoved},
	StateRunning:  {StateExited, stateRemoved},
	StateExited:   {stateRemoved},
}

// stateRemoved is the state update is asked for to delete a record.
const stateRemoved State = "removed"

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

func allowed(from, to State) bool {
	return from == to || slices.Contains(transitions[from], to)
}

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
	case stateRemoved:
		return EventDeleted, from != StateCreating
	}
	return 0, false
}

// errUnchanged lets an update function decline to change anything.
var errUnchanged = errors.New("container record unchanged")

// add records a new container in state creating: the birth of a record,
// which from then on only changes through update. It is private to the
// creating goroutine (hidden from Get and List) until update makes it
// created.
func (m *Manager) add(c *Container) error {
	if c.State != StateCreating {
		return newTransitionError(c.ID, "", c.State)
	}
	defer m.records.Lock(c.ID)()
	if err := m.opts.DB.Put(store.Containers, c.ID, c); err != nil {
		return err
	}
	m.mu.Lock()
	m.creating[c.ID] = c.clone()
	m.mu.Unlock()
	return nil
}

// update is the one way a container's record changes. Under the record's
// lock it applies fn to a copy of the current record, checks the state
// change against the transitions table, persists the copy (deletes the
// record when it becomes removed), swaps it in for the old one and emits
// the event of the transition. When fn or the database fails nothing has
// changed. It returns a copy of the new record.
//
// The record lock is held only for this; callers that also hold the
// container's operation lock (m.ops) take it first.
func (m *Manager) update(id string, fn func(*Container) error) (*Container, error) {
	defer m.records.Lock(id)()
	m.mu.Lock()
	cur, ok := m.containers[id]
	if !ok {
		cur, ok = m.creating[id]
	}
	m.mu.Unlock()
	if !ok {
		return nil, errdefs.NotFound("container %q not found", id)
	}
	next := cur.clone()
	if err := fn(next); err != nil {
		return nil, err
	}
	if next.ID != id {
		return nil, fmt.Errorf("container %s: update changed the id to %q", id, next.ID)
	}
	if !allowed(cur.State, next.State) {
		return nil, newTransitionError(id, cur.State, next.State)
	}
	key := reservationKey(cur.SandboxID, &cur.Spec)
	if next.State == stateRemoved {
		if err := m.opts.DB.Delete(store.Containers, id); err != nil {
			return nil, fmt.Errorf("delete record of container %s: %w", id, err)
		}
		m.mu.Lock()
		delete(m.containers, id)
		delete(m.creating, id)
		if m.byKey[key] == id {
			delete(m.byKey, key)
		}
		m.mu.Unlock()
	} else {
		if err := m.opts.DB.Put(store.Containers, id, next); err != nil {
			return nil, fmt.Errorf("record container %s: %w", id, err)
		}
		m.mu.Lock()
		if next.State == StateCreating {
			m.creating[id] = next
		} else {
			delete(m.creating, id)
			m.containers[id] = next
			if cur.State == StateCreating {
				m.byKey[key] = id
			}
		}
		m.mu.Unlock()
	}
	if t, ok := eventFor(cur.State, next.State); ok {
		// A deleted container is reported as it was last recorded.
		snapshot := next
		if next.State == stateRemoved {
			snapshot = cur
		}
		m.emit(t, snapshot)
	}
	return next.clone(), nil
}
