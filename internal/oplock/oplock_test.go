package oplock

import (
	"sync"
	"testing"
	"time"
)

func TestLockSerialisesOneIDOnly(t *testing.T) {
	var s Set
	unlockA := s.Lock("a")
	// Another id is not blocked by a.
	done := make(chan struct{})
	go func() { s.Lock("b")(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("b waited for a")
	}
	// The same id waits.
	var wg sync.WaitGroup
	got := make(chan struct{})
	wg.Add(1)
	go func() { defer wg.Done(); s.Lock("a")(); close(got) }()
	select {
	case <-got:
		t.Fatal("a was locked twice")
	case <-time.After(50 * time.Millisecond):
	}
	unlockA()
	wg.Wait()
	s.Forget("a")
}
