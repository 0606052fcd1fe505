package handlerprobe

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"

	"github.com/floe-cri/floe/internal/errdefs"
)

// Registry holds the latest probe of every handler: the daemon probes at
// startup and on SIGHUP, and the CRI server, inspect endpoint and startup
// checks read it. Probes run in the background, each handler on its own:
// a runc probe takes some tens of milliseconds, a gVisor one about two
// seconds (its sandbox's teardown), and pods of one handler never wait for
// another handler's probe (Await).
type Registry struct {
	targets []Target
	opts    Options
	log     *slog.Logger

	// round serialises probe rounds (a SIGHUP during the startup round
	// waits for it): two probes of one handler at once would sweep each
	// other's trial containers.
	round sync.Mutex
	wg    sync.WaitGroup

	mu      sync.RWMutex
	results map[string]Result
	// pending holds, per handler whose probe is under way, a channel
	// closed when its result is in.
	pending map[string]chan struct{}
}

// NewRegistry returns a registry of targets that have not been probed
// yet (every handler counts as usable until its first probe).
func NewRegistry(targets []Target, o Options, log *slog.Logger) *Registry {
	return &Registry{targets: targets, opts: o, log: log, results: map[string]Result{}, pending: map[string]chan struct{}{}}
}

// Start begins a probe round of every handler in the background and
// returns a channel closed when all results are in. From the moment it
// returns, Await of a handler waits for that handler's result. The round
// ends early when ctx ends (its probes then report the cancellation);
// Wait waits for every round started.
func (r *Registry) Start(ctx context.Context) <-chan struct{} {
	chans := make(map[string]chan struct{}, len(r.targets))
	r.mu.Lock()
	for _, t := range r.targets {
		ch := make(chan struct{})
		chans[t.Name] = ch
		r.pending[t.Name] = ch
	}
	r.mu.Unlock()
	done := make(chan struct{})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(done)
		r.round.Lock()
		defer r.round.Unlock()
		if err := Sweep(ctx, r.targets, r.opts); err != nil {
			r.log.Warn("leftovers of interrupted handler probes", "err", err)
		}
		var wg sync.WaitGroup
		for _, t := range r.targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := Probe(ctx, t, r.opts)
				if res.Usable {
					r.log.Info("runtime handler probed: usable", "handler", t.Name, "duration", res.Duration)
				} else {
					r.log.Error("runtime handler probed: UNUSABLE", "handler", t.Name, "duration", res.Duration, "err", res.Error)
				}
				r.mu.Lock()
				r.results[t.Name] = res
				if r.pending[t.Name] == chans[t.Name] {
					delete(r.pending, t.Name)
				}
				r.mu.Unlock()
				close(chans[t.Name])
			}()
		}
		wg.Wait()
	}()
	return done
}

// ProbeAll probes every handler, concurrently, and returns the results
// once all are in.
func (r *Registry) ProbeAll(ctx context.Context) map[string]Result {
	<-r.Start(ctx)
	return r.Results()
}

// Wait waits for every probe round started to end.
func (r *Registry) Wait() { r.wg.Wait() }

// Probing reports whether the handler's probe is under way.
func (r *Registry) Probing(handler string) bool {
	if r == nil {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.pending[handler]
	return ok
}

// Await waits for the handler's probe under way, if any, then says
// whether the handler may be used (Check). It gives up with ctx.
func (r *Registry) Await(ctx context.Context, handler string) error {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	ch := r.pending[handler]
	r.mu.RUnlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("runtime handler %q is still being probed: %w", handler, ctx.Err())
		}
	}
	return r.Check(handler)
}

// Record stores one handler's result as its latest probe (a caller that
// probed it by other means; tests).
func (r *Registry) Record(res Result) {
	r.mu.Lock()
	r.results[res.Handler] = res
	r.mu.Unlock()
}

// Results returns the latest probe of each handler probed so far.
func (r *Registry) Results() map[string]Result {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return maps.Clone(r.results)
}

// Check says whether a handler may be used: FailedPrecondition naming it
// and carrying the runtime's own error when its latest probe failed. It
// does not wait: a handler whose first probe is under way counts as usable
// (Await waits).
func (r *Registry) Check(handler string) error {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	res, ok := r.results[handler]
	r.mu.RUnlock()
	if !ok || res.Usable {
		return nil
	}
	return errdefs.FailedPrecondition("runtime handler %q is unusable on this host (probed %s): %s",
		handler, res.At.Format("2006-01-02T15:04:05Z"), res.Error)
}
