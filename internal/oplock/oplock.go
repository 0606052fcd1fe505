// Package oplock serialises operations on one object (stop, remove, update
// of the same sandbox or container) without a global lock: each id gets
// its own mutex, so a slow operation on one object never delays another.
package oplock

import "sync"

// Set hands out one mutex per id. The zero value is ready to use.
type Set struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// Lock locks id's mutex and returns its unlock.
func (s *Set) Lock(id string) (unlock func()) {
	s.mu.Lock()
	if s.locks == nil {
		s.locks = map[string]*sync.Mutex{}
	}
	l, ok := s.locks[id]
	if !ok {
		l = &sync.Mutex{}
		s.locks[id] = l
	}
	s.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Forget drops id's mutex once the object is gone.
func (s *Set) Forget(id string) {
	s.mu.Lock()
	delete(s.locks, id)
	s.mu.Unlock()
}
