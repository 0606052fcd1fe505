// Package reserve holds what sandbox and container creation share to make
// the kubelet's retries safe: a creation runs on its own context and may
// outlive the request that started it; a retry of the same request waits
// for it; and whether anyone was still waiting when it finished decides if
// the result was handed out ("claimed") or must be kept for a later retry.
//
// internal/objects keeps the maps and the lock; the methods marked "caller
// holds its lock" must be called under it.
package reserve

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Creation is one create request being carried out.
type Creation struct {
	ID   string // id of the object being created
	Hash string // identifies the request's content
	done chan struct{}
	err  error
	// waiters are the contexts of callers waiting for the result.
	waiters []context.Context
}

// New starts tracking a creation requested by ctx.
func New(id, hash string, ctx context.Context) *Creation {
	return &Creation{ID: id, Hash: hash, done: make(chan struct{}), waiters: []context.Context{ctx}}
}

// AddWaiter registers another caller (a retry). Caller holds its lock.
func (c *Creation) AddWaiter(ctx context.Context) { c.waiters = append(c.waiters, ctx) }

// Claimed reports whether a caller is still waiting, i.e. whether the
// result will reach someone. Caller holds its lock.
func (c *Creation) Claimed() bool {
	for _, w := range c.waiters {
		if w.Err() == nil {
			return true
		}
	}
	return false
}

// Finish publishes the outcome to every waiter. Call it once.
func (c *Creation) Finish(err error) {
	c.err = err
	close(c.done)
}

// Wait blocks until the creation finished or ctx ended.
func (c *Creation) Wait(ctx context.Context, what string) (string, error) {
	select {
	case <-c.done:
		if c.err != nil {
			return "", c.err
		}
		return c.ID, nil
	case <-ctx.Done():
		return "", fmt.Errorf("%s %s is still being created; retry the same request to get it: %w", what, c.ID, ctx.Err())
	}
}

// ExpireUnclaimed runs remove after grace unless stop closes first or
// stillUnclaimed says a retry took the object meanwhile. It runs in a
// goroutine counted in wg, so the owner's Close can wait for it.
func ExpireUnclaimed(wg *sync.WaitGroup, stop <-chan struct{}, grace time.Duration, stillUnclaimed func() bool, remove func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if stillUnclaimed() {
			remove()
		}
	}()
}
