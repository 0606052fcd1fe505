package handlerprobe

import (
	"context"
	"log/slog"
	"maps"
	"sync"

	"github.com/floe-cri/floe/internal/errdefs"
)

// Registry holds the latest probe of every handler: the daemon probes at
// startup and on SIGHUP, and the CRI server, inspect endpoint and startup
// checks read it.
type Registry struct {
	targets []Target
	opts    Options
	log     *slog.Logger

	mu      sync.RWMutex
	results map[string]Result
}

// NewRegistry returns a registry of targets that have not been probed
// yet (every handler counts as usable until its first probe).
func NewRegistry(targets []Target, o Options, log *slog.Logger) *Registry {
	return &Registry{targets: targets, opts: o, log: log, results: map[string]Result{}}
}

// ProbeAll probes every handler, concurrently (gVisor alone needs ~2 s to
// tear its sandbox down), and returns the results once all are in.
func (r *Registry) ProbeAll(ctx context.Context) map[string]Result {
	if err := Sweep(ctx, r.targets, r.opts); err != nil {
		r.log.Warn("leftovers of interrupted handler probes", "err", err)
	}
	out := make(map[string]Result, len(r.targets))
	var mu sync.Mutex
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
			mu.Lock()
			out[t.Name] = res
			mu.Unlock()
		}()
	}
	wg.Wait()
	r.mu.Lock()
	r.results = maps.Clone(out)
	r.mu.Unlock()
	return out
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
// and carrying the runtime's own error when its latest probe failed.
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
