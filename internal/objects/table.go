// Package objects is the table both domain cores (pod sandboxes and
// containers) keep their records in: the in-memory map behind Get and
// List, the one update path every change of a record goes through (lock,
// transition check, persist, swap, notify), the per-object operation
// locks, and the reservations that make the kubelet's create retries safe
// (see internal/reserve): a retry of a creation in progress waits for it,
// and a result nobody was waiting for anymore is kept "unclaimed" for the
// retry and removed after a grace period.
//
// A record is born hidden (its creation is under way, or was interrupted
// by a crash) and becomes visible to Get and List when its creation is
// published. The table knows records only through the Schema the core
// gives it.
package objects

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/ids"
	"github.com/floe-cri/floe/internal/oplock"
	"github.com/floe-cri/floe/internal/reserve"
	"github.com/floe-cri/floe/internal/store"
)

// Schema is what the table needs to know of a record type T.
type Schema[T any] struct {
	// Kind names the objects in messages ("container", "pod sandbox");
	// IDField is the CRI request field that carries their id.
	Kind, IDField string
	// Bucket is where the records are persisted.
	Bucket string

	// Key is the name the kubelet reserves: one live object per key.
	Key   func(*T) string
	Clone func(*T) *T
	// Hidden says the record's creation is not published (yet): Get and
	// List do not see it. Removed says an update asks for the record to
	// be deleted.
	Hidden, Removed func(*T) bool
	// Check refuses an illegal change of a record (the core's transition
	// table); nil allows every change.
	Check func(cur, next *T) error
	// Changed is told of every change Update made, after it was persisted
	// (lifecycle events); nil for none.
	Changed func(cur, next *T)
}

// Options configure a Table.
type Options struct {
	DB *store.DB
	// CreateTimeout bounds one creation, independent of its caller's
	// deadline; AbandonedGrace is how long an unclaimed result waits for
	// the retry.
	CreateTimeout  time.Duration
	AbandonedGrace time.Duration
	Log            *slog.Logger
}

// Table holds one kind of record. Its lock is never held across calls to
// the database or to anything outside the table.
type Table[T any, P Record[T]] struct {
	s    Schema[T]
	opts Options

	mu      sync.Mutex
	visible map[string]*T
	hidden  map[string]*T // creations in progress or interrupted
	byKey   map[string]string
	// inflight are the creations under way, by reservation key.
	inflight map[string]*reserve.Creation

	// ops serialise the operations on one object across calls to the
	// outside world; records serialise the changes of its record (Update)
	// and are never held across such a call. ops is taken first.
	ops     oplock.Set
	records oplock.Set

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
}

// New returns an empty table; Load and Adopt fill it after a restart.
func New[T any, P Record[T]](s Schema[T], opts Options) *Table[T, P] {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.CreateTimeout <= 0 {
		opts.CreateTimeout = 4 * time.Minute
	}
	if opts.AbandonedGrace <= 0 {
		opts.AbandonedGrace = 5 * time.Minute
	}
	return &Table[T, P]{
		s: s, opts: opts,
		visible:  map[string]*T{},
		hidden:   map[string]*T{},
		byKey:    map[string]string{},
		inflight: map[string]*reserve.Creation{},
		stop:     make(chan struct{}),
	}
}

// Close stops the expiry timers and waits for creations under way.
func (t *Table[T, P]) Close() {
	t.stopOnce.Do(func() { close(t.stop) })
	t.wg.Wait()
}

// Lock takes the operation lock of one object.
func (t *Table[T, P]) Lock(id string) (unlock func()) { return t.ops.Lock(id) }

// Forget drops the locks of a removed object.
func (t *Table[T, P]) Forget(id string) {
	t.ops.Forget(id)
	t.records.Forget(id)
}

// Get returns a copy of the visible record with this id or unique prefix.
func (t *Table[T, P]) Get(idOrPrefix string) (*T, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id, err := ids.Lookup(t.visible, idOrPrefix, t.s.Kind, t.s.IDField)
	if err != nil {
		return nil, err
	}
	return t.s.Clone(t.visible[id]), nil
}

// Hidden returns a copy of the hidden record with exactly this id: a
// creation under way or interrupted, or a removal being finished.
func (t *Table[T, P]) Hidden(id string) (*T, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.hidden[id]
	if !ok {
		return nil, false
	}
	return t.s.Clone(r), true
}

// Find is Get for idempotent operations (stop, remove): no record with
// that id is a nil record without an error.
func (t *Table[T, P]) Find(idOrPrefix string) (*T, error) {
	r, err := t.Get(idOrPrefix)
	if errdefs.KindOf(err) == errdefs.KindNotFound {
		return nil, nil
	}
	return r, err
}

// List returns copies of the claimed records that match, oldest first.
func (t *Table[T, P]) List(match func(*T) bool) []*T {
	t.mu.Lock()
	out := make([]*T, 0, len(t.visible))
	for _, r := range t.visible {
		if !P(r).meta().Unclaimed && match(r) {
			out = append(out, t.s.Clone(r))
		}
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return P(out[i]).meta().CreatedAt < P(out[j]).meta().CreatedAt })
	return out
}

// View is List without the copies, for read-only callers serving lists
// of hundreds of records (ListContainers, ListPodSandbox): a record in the
// table is never changed in place (Update swaps in a changed copy), so
// the records themselves can be read without the table's lock, but they
// must not be modified or kept.
func (t *Table[T, P]) View(match func(*T) bool) []*T {
	t.mu.Lock()
	out := make([]*T, 0, len(t.visible))
	for _, r := range t.visible {
		if !P(r).meta().Unclaimed && match(r) {
			out = append(out, r)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b *T) int { return cmp.Compare(P(a).meta().CreatedAt, P(b).meta().CreatedAt) })
	return out
}

// IDs returns the ids of the visible records that match, claimed or not.
func (t *Table[T, P]) IDs(match func(*T) bool) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for id, r := range t.visible {
		if match(r) {
			out = append(out, id)
		}
	}
	return out
}

// All returns copies of every record that matches, hidden (creations in
// progress or interrupted) and unclaimed ones included: for what must not
// be handed out twice, like a pod's automatically chosen ids.
func (t *Table[T, P]) All(match func(*T) bool) []*T {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*T
	for _, set := range []map[string]*T{t.visible, t.hidden} {
		for _, r := range set {
			if match(r) {
				out = append(out, t.s.Clone(r))
			}
		}
	}
	return out
}

// Add records a new object whose creation starts: the birth of a record,
// which from then on only changes through Update. It must be hidden.
func (t *Table[T, P]) Add(r *T) error {
	id := P(r).meta().ID
	if !t.s.Hidden(r) {
		return fmt.Errorf("%s %s: a new record must start hidden, in creation", t.s.Kind, id)
	}
	defer t.records.Lock(id)()
	if err := t.opts.DB.Put(t.s.Bucket, id, r); err != nil {
		return fmt.Errorf("record %s %s: %w", t.s.Kind, id, err)
	}
	t.mu.Lock()
	t.hidden[id] = t.s.Clone(r)
	t.mu.Unlock()
	return nil
}

// ErrUnchanged lets an update function decline to change anything.
var ErrUnchanged = errors.New("record unchanged")

// Update is the one way a record changes. Under the record's lock it
// applies fn to a copy of the current record, checks the change with the
// schema, persists the copy (deletes the record when it is removed), swaps
// it in and tells Changed. When fn, the check or the database fails
// nothing has changed. It returns a copy of the new record.
func (t *Table[T, P]) Update(id string, fn func(*T) error) (*T, error) {
	defer t.records.Lock(id)()
	t.mu.Lock()
	cur, ok := t.visible[id]
	if !ok {
		cur, ok = t.hidden[id]
	}
	t.mu.Unlock()
	if !ok {
		return nil, errdefs.NotFound("%s %q not found", t.s.Kind, id)
	}
	next := t.s.Clone(cur)
	if err := fn(next); err != nil {
		return nil, err
	}
	if got := P(next).meta().ID; got != id {
		return nil, fmt.Errorf("%s %s: update changed the id to %q", t.s.Kind, id, got)
	}
	if t.s.Check != nil {
		if err := t.s.Check(cur, next); err != nil {
			return nil, err
		}
	}
	if err := t.persist(id, next); err != nil {
		return nil, err
	}
	t.swap(id, cur, next)
	if t.s.Changed != nil {
		t.s.Changed(cur, next)
	}
	return t.s.Clone(next), nil
}

func (t *Table[T, P]) persist(id string, next *T) error {
	if t.s.Removed(next) {
		if err := t.opts.DB.Delete(t.s.Bucket, id); err != nil {
			return fmt.Errorf("delete record of %s %s: %w", t.s.Kind, id, err)
		}
		return nil
	}
	if err := t.opts.DB.Put(t.s.Bucket, id, next); err != nil {
		return fmt.Errorf("record %s %s: %w", t.s.Kind, id, err)
	}
	return nil
}

// swap puts next in cur's place (or drops both when next is removed).
func (t *Table[T, P]) swap(id string, cur, next *T) {
	key := t.s.Key(cur)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.s.Removed(next):
		delete(t.visible, id)
		delete(t.hidden, id)
		if t.byKey[key] == id {
			delete(t.byKey, key)
		}
	case t.s.Hidden(next):
		// A visible record that becomes hidden (a removal under way in
		// the background) leaves Get, List and its name at once.
		delete(t.visible, id)
		if t.byKey[key] == id {
			delete(t.byKey, key)
		}
		t.hidden[id] = next
	default:
		delete(t.hidden, id)
		t.visible[id] = next
		t.byKey[key] = id
	}
}

// Load reads every stored record, skipping (and logging) unreadable ones.
// Pass each to Adopt, in the order the core needs.
func (t *Table[T, P]) Load() ([]*T, error) {
	var out []*T
	err := t.opts.DB.ForEach(t.s.Bucket, func(id string, data []byte) error {
		r := new(T)
		if err := json.Unmarshal(data, r); err != nil {
			t.opts.Log.Error("skipping unreadable record", "kind", t.s.Kind, "id", id, "err", err)
			return nil
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load %s records: %w", t.s.Kind, err)
	}
	return out, nil
}

// Adopt takes a loaded record back after a restart: a hidden one (an
// interrupted creation) only for Update to undo it; a visible unclaimed
// one gets a new grace period, expiring through abandon.
func (t *Table[T, P]) Adopt(r *T, abandon func(id string)) {
	id := P(r).meta().ID
	t.mu.Lock()
	if t.s.Hidden(r) {
		t.hidden[id] = r
	} else {
		t.visible[id] = r
		t.byKey[t.s.Key(r)] = id
	}
	t.mu.Unlock()
	if !t.s.Hidden(r) && P(r).meta().Unclaimed {
		t.expire(id, abandon)
	}
}

// Len is the number of visible records and of hidden ones (creations
// under way or not yet undone).
func (t *Table[T, P]) Len() (visible, hidden int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.visible), len(t.hidden)
}
