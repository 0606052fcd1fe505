package objects

import (
	"context"
	"errors"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/ids"
	"github.com/floe-cri/floe/internal/reserve"
)

// Creation is one create request as the table carries it out.
type Creation[T any] struct {
	// Key is the name the request reserves, Hash its content.
	Key, Hash string
	// Make builds the object with a fresh id, on a context of its own
	// (bounded by the create timeout). It records the object with Add
	// before its first side effect and undoes its own failures.
	Make func(ctx context.Context, id string) (*T, error)
	// Publish sets the state a made object becomes visible in.
	Publish func(*T)
	// Undo releases a made object that could not be published.
	Undo func(*T)
	// Abandon removes an object no retry claimed within the grace.
	Abandon func(id string)
	// Err maps a failure of Make to what the callers get; nil keeps it.
	Err func(error) error
	// Begin, when set, is called before Make; the func it returns after
	// the outcome is published (e.g. to hold off plugin syncs while the
	// creation runs).
	Begin func() (end func())
	// Published, when set, is told of the published object before any
	// caller hears of it (e.g. plugins' post-create events).
	Published func(*T)
}

// Create carries out a creation, or hands the caller what an identical
// earlier request is making or made. A caller that gives up does not stop
// the creation: its retry (same key and hash) waits for it, or claims the
// result kept for it. Another request for a reserved key is refused.
func (t *Table[T, P]) Create(ctx context.Context, c Creation[T]) (string, error) {
	t.mu.Lock()
	if cr, ok := t.inflight[c.Key]; ok {
		if cr.Hash != c.Hash {
			t.mu.Unlock()
			return "", errdefs.AlreadyExists("%s name %q is reserved for %s %s, which is being created with a different configuration", t.s.Kind, c.Key, t.s.Kind, cr.ID)
		}
		cr.AddWaiter(ctx)
		t.mu.Unlock()
		t.opts.Log.Info("retry of a creation in progress: waiting for it", "kind", t.s.Kind, "id", cr.ID, "name", c.Key)
		return cr.Wait(ctx, t.s.Kind)
	}
	if id, ok := t.byKey[c.Key]; ok {
		r := t.visible[id]
		t.mu.Unlock()
		if err := t.claim(id, r, c); err != nil {
			return "", err
		}
		return id, nil
	}
	cr := reserve.New(ids.New(), c.Hash, ctx)
	t.inflight[c.Key] = cr
	t.mu.Unlock()

	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		if c.Begin != nil {
			defer c.Begin()()
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.opts.CreateTimeout)
		defer cancel()
		r, err := c.Make(cctx, cr.ID)
		if err != nil && c.Err != nil {
			err = c.Err(err)
		}
		t.finish(c, cr, r, err)
	}()
	return cr.Wait(ctx, t.s.Kind)
}

// claim hands an unclaimed object of the same request to its retry; if
// another retry was first, or the request differs, the name is taken.
func (t *Table[T, P]) claim(id string, r *T, c Creation[T]) error {
	taken := errdefs.AlreadyExists("%s name %q is already reserved for %s %s", t.s.Kind, c.Key, t.s.Kind, id)
	if !P(r).meta().Unclaimed || P(r).meta().SpecHash != c.Hash {
		return taken
	}
	if _, err := t.Update(id, t.claimUpdate); errors.Is(err, ErrUnchanged) {
		return taken
	} else if err != nil {
		return err
	}
	t.opts.Log.Info("handed an object finished after its caller's deadline to the retry", "kind", t.s.Kind, "id", id, "name", c.Key)
	return nil
}

func (t *Table[T, P]) claimUpdate(r *T) error {
	if !P(r).meta().Unclaimed {
		return ErrUnchanged
	}
	P(r).meta().Unclaimed = false
	return nil
}

// finish publishes the outcome of a creation: the record Make built
// becomes visible, claimed when at least one caller still waits for it.
func (t *Table[T, P]) finish(c Creation[T], cr *reserve.Creation, built *T, err error) {
	var r *T
	if err == nil {
		t.mu.Lock()
		unclaimed := !cr.Claimed()
		t.mu.Unlock()
		r, err = t.Update(P(built).meta().ID, func(r *T) error {
			*r = *t.s.Clone(built)
			c.Publish(r)
			P(r).meta().Unclaimed = unclaimed
			return nil
		})
		if err != nil {
			c.Undo(built)
		}
	}
	t.mu.Lock()
	delete(t.inflight, c.Key)
	// A retry that joined while the record was being written got this
	// object too: it is claimed after all. Retries from now on find it
	// through the key and claim it themselves.
	lateClaim := err == nil && P(r).meta().Unclaimed && cr.Claimed()
	t.mu.Unlock()
	if lateClaim {
		if claimed, cerr := t.Update(P(r).meta().ID, t.claimUpdate); cerr == nil {
			r = claimed
		} else if !errors.Is(cerr, ErrUnchanged) {
			t.opts.Log.Error("record the claim of an object a retry joined late", "kind", t.s.Kind, "id", P(r).meta().ID, "err", cerr)
		}
	}
	if err == nil && c.Published != nil {
		c.Published(t.s.Clone(r))
	}
	cr.Finish(err)
	if err == nil && P(r).meta().Unclaimed {
		t.opts.Log.Warn("creation finished after its caller gave up; keeping it for the retry", "kind", t.s.Kind, "id", P(r).meta().ID, "name", c.Key, "grace", t.opts.AbandonedGrace)
		t.expire(P(r).meta().ID, c.Abandon)
	}
}

// expire runs abandon after the grace period unless a retry claimed the
// object meanwhile (or the table closed).
func (t *Table[T, P]) expire(id string, abandon func(id string)) {
	reserve.ExpireUnclaimed(&t.wg, t.stop, t.opts.AbandonedGrace, func() bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		r, ok := t.visible[id]
		return ok && P(r).meta().Unclaimed
	}, func() {
		t.opts.Log.Warn("removing an object no retry claimed", "kind", t.s.Kind, "id", id)
		abandon(id)
	})
}
