package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/floe-cri/floe/internal/failpoint"
)

// The remover finishes RemoveContainer in the background. Deleting a
// container's writable layer (unmount, then containers/storage rewriting
// and fsyncing its container and layer lists) and its bundle is most of
// what a removal costs and nothing the caller waits for: RemoveContainer
// answers once the runtime container is deleted and the record says
// "removing" (durably, so a restart finishes what a crash interrupted),
// which frees the name and hides the container. Storage names carry the
// container id, so a container created at once under the same CRI name
// never meets the layer still being deleted.
type remover struct {
	mu      sync.Mutex
	pending []string
	// failed are removals to try again after retryAfter.
	failed     []string
	retryAfter time.Duration
	wake       chan struct{}
}

const (
	removeRetryMin = time.Second
	removeRetryMax = time.Minute
	// removeTimeout bounds the deletion of one container's files.
	removeTimeout = time.Minute
)

// queueRemoval hands a container in state "removing" to the remover.
func (m *Manager) queueRemoval(id string) {
	r := &m.remover
	r.mu.Lock()
	r.pending = append(r.pending, id)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// next returns the next removal to finish, if any.
func (r *remover) next() (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) == 0 {
		return "", false
	}
	id := r.pending[0]
	r.pending = r.pending[1:]
	return id, true
}

// removeLoop is the remover's goroutine, owned by the Manager: started by
// New, stopped by Close. On Close it finishes the removals already queued
// (so a clean shutdown leaves none half done) and leaves failed ones to
// the next start, which finds their records still "removing".
func (m *Manager) removeLoop() {
	defer m.wg.Done()
	r := &m.remover
	var retry *time.Timer
	var retryC <-chan time.Time
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		if id, ok := r.next(); ok {
			err := m.finishRemoval(id)
			r.mu.Lock()
			if err != nil {
				m.log.Error("finish container removal; trying again later", "container", id, "err", err)
				r.failed = append(r.failed, id)
			} else if len(r.failed) == 0 {
				r.retryAfter = 0 // the trouble is over: the next one starts short again
			}
			r.mu.Unlock()
			continue
		}
		r.mu.Lock()
		if len(r.failed) > 0 && retryC == nil {
			r.retryAfter = min(max(2*r.retryAfter, removeRetryMin), removeRetryMax)
			retry = time.NewTimer(r.retryAfter)
			retryC = retry.C
		}
		r.mu.Unlock()
		select {
		case <-r.wake:
		case <-retryC:
			retryC = nil
			r.mu.Lock()
			r.pending = append(r.pending, r.failed...)
			r.failed = nil
			r.mu.Unlock()
		case <-m.stop:
			// Removals queued before the stop still get done.
			if _, ok := r.peek(); ok {
				continue
			}
			return
		}
	}
}

func (r *remover) peek() (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) == 0 {
		return "", false
	}
	return r.pending[0], true
}

// FinishRemovals finishes, in the caller, every removal the remover has
// not finished yet: for RemoveImage, which the store refuses while a
// container layer on the image exists, and which the kubelet's image GC
// and critest send right after RemoveContainer.
func (m *Manager) FinishRemovals() error {
	var errs []error
	for _, c := range m.table.All(func(c *Container) bool { return c.State == stateRemoving }) {
		errs = append(errs, m.finishRemoval(c.ID))
	}
	return errors.Join(errs...)
}

// finishRemoval deletes what a removed container still holds (its
// writable layer and bundle) and then its record. Every step is idempotent, so a removal interrupted anywhere is
// finished by the next attempt.
func (m *Manager) finishRemoval(id string) error {
	defer m.table.Lock(id)()
	c, ok := m.table.Hidden(id)
	if !ok || c.State != stateRemoving {
		return nil // finished meanwhile
	}
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	if err := m.releaseFiles(ctx, c); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	failpoint.Hit("container.remove.before-record-delete")
	if _, err := m.update(id, removed); err != nil {
		return err
	}
	m.table.Forget(id)
	m.log.Debug("container files removed", "container", id, "pod", c.SandboxID)
	return nil
}

// releaseMounts gives back the mounts a container holds outside its
// rootfs: the user namespace mounts under its bundle and its image
// volumes (RemoveContainer does this before it answers: an image volume
// must be free for RemoveImage, and its mount gone, once the container
// is). Each step is idempotent.
func (m *Manager) releaseMounts(c *Container) error {
	if err := releaseUserns(c); err != nil {
		return fmt.Errorf("release user namespace mounts: %w", err)
	}
	if err := m.releaseImageMounts(c); err != nil {
		return fmt.Errorf("release image volumes: %w", err)
	}
	return nil
}

// releaseFiles deletes a container's writable layer and bundle. Each step
// is idempotent.
func (m *Manager) releaseFiles(_ context.Context, c *Container) error {
	if err := m.opts.Images.DeleteContainerLayer(c.ID); err != nil {
		return fmt.Errorf("delete rootfs: %w", err)
	}
	if err := os.RemoveAll(c.Bundle); err != nil {
		return fmt.Errorf("remove bundle: %w", err)
	}
	return nil
}
