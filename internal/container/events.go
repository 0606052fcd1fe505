package container

import (
	"errors"
	"sync"
	"time"
)

// EventType is a container lifecycle transition.
type EventType int

// Lifecycle events, in the order one container goes through them.
const (
	EventCreated EventType = iota
	EventStarted
	EventStopped
	EventDeleted
)

func (t EventType) String() string {
	switch t {
	case EventCreated:
		return "created"
	case EventStarted:
		return "started"
	case EventStopped:
		return "stopped"
	case EventDeleted:
		return "deleted"
	}
	return "unknown"
}

// Event is one transition with a snapshot of the container as it was
// right after it (a deleted container is no longer in the manager).
type Event struct {
	Type      EventType
	Time      time.Time
	Container *Container
}

// DefaultEventBuffer is how many events a subscriber may fall behind
// before it is dropped: enough for bursts of hundreds of containers.
const DefaultEventBuffer = 4096

// ErrSlowSubscriber ends a subscription whose buffer filled up: the
// runtime never waits for an event reader, so a reader that fell that far
// behind is cut off and must subscribe again (and relist).
var ErrSlowSubscriber = errors.New("container event subscriber fell too far behind; events were dropped")

// ErrEventsClosed ends subscriptions when the manager closes.
var ErrEventsClosed = errors.New("container events closed: the runtime is shutting down")

// broadcaster fans events out to subscribers without ever blocking the
// publisher. Publishing holds mu, so every subscriber sees events in the
// same order.
type broadcaster struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// Subscription receives events on C until Done is closed; Err then says
// why. Close it when no longer reading.
type Subscription struct {
	C    <-chan Event
	ch   chan Event
	b    *broadcaster
	done chan struct{}
	err  error // set before done is closed
}

// Done is closed when the subscription ends.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err is why the subscription ended (nil while it runs or after Close).
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.end(s, nil)
}

func (b *broadcaster) subscribe(buffer int) *Subscription {
	if buffer <= 0 {
		buffer = DefaultEventBuffer
	}
	ch := make(chan Event, buffer)
	s := &Subscription{C: ch, ch: ch, b: b, done: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		s.err = ErrEventsClosed
		close(s.done)
		return s
	}
	if b.subs == nil {
		b.subs = map[*Subscription]struct{}{}
	}
	b.subs[s] = struct{}{}
	return s
}

// end removes s; b.mu is held. Events already buffered stay readable.
func (b *broadcaster) end(s *Subscription, err error) {
	if _, ok := b.subs[s]; !ok {
		return
	}
	delete(b.subs, s)
	s.err = err
	close(s.done)
}

func (b *broadcaster) publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		select {
		case s.ch <- ev:
		default:
			b.end(s, ErrSlowSubscriber)
		}
	}
}

func (b *broadcaster) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		b.end(s, ErrEventsClosed)
	}
}

// SubscribeEvents returns a subscription to every container lifecycle
// event from now on; buffer <= 0 means DefaultEventBuffer.
func (m *Manager) SubscribeEvents(buffer int) *Subscription {
	return m.events.subscribe(buffer)
}

// emit publishes a transition of c (a snapshot is taken).
func (m *Manager) emit(t EventType, c *Container) {
	m.events.publish(Event{Type: t, Time: time.Now(), Container: c.clone()})
}
