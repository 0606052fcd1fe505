package nri

import (
	"context"
	"sync"
	"time"

	nri "github.com/containerd/nri/pkg/adaptation"

	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/sandbox"
)

// A plugin that joins must learn of every pod and container exactly one
// way: in its Synchronize, or through the events relayed after it joined.
// The library adds it to the plugins events are relayed to only once its
// Synchronize returned, so an event relayed meanwhile would miss it while
// the list it got was made before the event's change (a container
// removed, stopped, started): it would believe in a state that no longer
// is. Hence two locks, each held shared by one side and exclusively by
// the synchronisation:
//   - the library's sync block (BlockSync) spans a whole pod or container
//     creation, from before the object is made until it is published, so
//     a created object is either in the list or its creation events reach
//     the plugin;
//   - the gate spans every single relay, so no other event is relayed
//     between the listing and the plugin's joining.
// The library takes its block before calling synchronize, which closes
// the gate: the order is the same on every path. The gate opens only once
// the library has added the plugin (releaseAfterJoin), and before the
// updates the plugin asked for are applied.

// syncGate lets relays through together and a synchronisation alone: a
// synchronisation closes it, waiting for the relays in flight, and holds
// it closed until it is released. Unlike a sync.RWMutex it may be closed
// again before the previous closer released it: the release waits for
// the library's sync block, which the next plugin's synchronisation may
// already hold.
type syncGate struct {
	mu      sync.Mutex
	changed sync.Cond
	relays  int // relays in flight
	closers int // synchronisations not yet released
}

func (g *syncGate) lockedCond() *sync.Cond {
	if g.changed.L == nil {
		g.changed.L = &g.mu
	}
	return &g.changed
}

// enter waits while the gate is closed, then counts a relay in.
func (g *syncGate) enter() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.closers > 0 {
		g.lockedCond().Wait()
	}
	g.relays++
}

func (g *syncGate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.relays--
	g.lockedCond().Broadcast()
}

// close keeps new relays out and waits for those in flight.
func (g *syncGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closers++
	for g.relays > 0 {
		g.lockedCond().Wait()
	}
}

func (g *syncGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closers--
	g.lockedCond().Broadcast()
}

// shared holds off synchronisation for one relay; call the returned func
// once the relay returned.
func (n *NRI) shared() func() {
	n.gate.enter()
	return n.gate.leave
}

// synchronize hands a connecting plugin every pod and container with
// no relay running, and lets relays run again only once the library has
// added the plugin to those events go to (releaseAfterJoin).
func (n *NRI) synchronize(ctx context.Context, cb nri.SyncCB) error {
	n.gate.close()
	updates, err := n.syncList(ctx, cb)
	n.releaseAfterJoin(updates)
	return err
}

// releaseAfterJoin opens the gate once the library's synchronisation is
// over: it adds the plugin after synchronize returned, under its own sync
// block, so taking that block shared marks the moment. Only then are the
// updates the plugin asked for applied: they take container locks, which
// a relay waiting at the gate may hold (a stop). Their failures are
// logged; the plugin stays.
func (n *NRI) releaseAfterJoin(updates []*nri.ContainerUpdate) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.a.BlockPluginSync().Unblock()
		n.gate.open()
		if len(updates) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if failed := n.applyUpdates(ctx, updates, ""); len(failed) > 0 {
			n.log.Warn("updates an NRI plugin asked for in its synchronisation failed", "containers", failed)
		}
	}()
}

// syncList lists the pods and containers and hands them to the plugin.
// The plugin may take as long as it was allowed to register
// (registration_timeout) when that is longer than request_timeout: a
// plugin reconciling its state with the node's is slower than one
// answering an event, and one that times out here is dropped, missing
// every container from then on. The library's request timeout is
// process-wide and read as each call starts; while the gate is closed no
// relay starts, so only this call gets the longer one.
func (n *NRI) syncList(ctx context.Context, cb nri.SyncCB) ([]*nri.ContainerUpdate, error) {
	if n.noStartupPlugins.Swap(false) {
		return cb(ctx, nil, nil)
	}
	var pods []*nri.PodSandbox
	for _, sb := range n.pods.List(sandbox.Filter{}) {
		pods = append(pods, podSandbox(sb))
	}
	var ctrs []*nri.Container
	for _, c := range n.containers.List(container.Filter{}) {
		ctrs = append(ctrs, containerInfo(c, nil))
	}
	if t := n.cfg.RegistrationTimeout; t > n.cfg.RequestTimeout {
		nri.SetPluginRequestTimeout(t)
		defer nri.SetPluginRequestTimeout(n.cfg.RequestTimeout)
	}
	return cb(ctx, pods, ctrs)
}
