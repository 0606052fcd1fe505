package objects

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/store"
)

// rec is a minimal record: states "new" (hidden), "up", "down", "gone".
type rec struct {
	Meta
	Name  string `json:"name"`
	State string `json:"state"`
}

func testSchema() Schema[rec] {
	return Schema[rec]{
		Kind: "thing", IDField: "thing_id", Bucket: store.Sandboxes,
		Key:     func(r *rec) string { return r.Name },
		Clone:   func(r *rec) *rec { c := *r; return &c },
		Hidden:  func(r *rec) bool { return r.State == "new" },
		Removed: func(r *rec) bool { return r.State == "gone" },
		Check: func(cur, next *rec) error {
			if cur.State == "down" && next.State == "up" {
				return errdefs.FailedPrecondition("thing %s is down", cur.ID)
			}
			return nil
		},
	}
}

type fixture struct {
	t      *testing.T
	db     *store.DB
	tab    *Table[rec, *rec]
	gone   chan string
	makeIn chan struct{} // when set, Make waits for it
	makes  atomic.Int32
}

func newFixture(t *testing.T, grace time.Duration) *fixture {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, db: db, gone: make(chan string, 4)}
	f.open(grace)
	t.Cleanup(func() { f.tab.Close(); db.Close() })
	return f
}

func (f *fixture) open(grace time.Duration) {
	f.tab = New[rec](testSchema(), Options{DB: f.db, AbandonedGrace: grace, CreateTimeout: time.Minute,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func (f *fixture) abandon(id string) {
	if _, err := f.tab.Update(id, func(r *rec) error { r.State = "gone"; return nil }); err != nil {
		f.t.Error(err)
	}
	f.gone <- id
}

func (f *fixture) creation(name, hash string) Creation[rec] {
	return Creation[rec]{
		Key: name, Hash: hash,
		Make: func(ctx context.Context, id string) (*rec, error) {
			f.makes.Add(1)
			r := &rec{Meta: Meta{ID: id, SpecHash: hash, CreatedAt: time.Now().UnixNano()}, Name: name, State: "new"}
			if err := f.tab.Add(r); err != nil {
				return nil, err
			}
			if f.makeIn != nil {
				<-f.makeIn
			}
			return r, nil
		},
		Publish: func(r *rec) { r.State = "up" },
		Undo:    func(r *rec) { f.tab.Update(r.ID, func(r *rec) error { r.State = "gone"; return nil }) },
		Abandon: f.abandon,
	}
}

func TestRetryAfterDeadlineClaimsTheResult(t *testing.T) {
	f := newFixture(t, time.Minute)
	f.makeIn = make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.tab.Create(ctx, f.creation("a", "h1")); err == nil {
		t.Fatal("create returned before its creation finished")
	}
	close(f.makeIn)
	// The result is kept unclaimed: hidden from lists, the name taken.
	deadline := time.Now().Add(2 * time.Second)
	for len(f.tab.IDs(func(*rec) bool { return true })) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if l := f.tab.List(func(*rec) bool { return true }); len(l) != 0 {
		t.Errorf("an unclaimed object is listed: %v", l)
	}
	if _, err := f.tab.Create(context.Background(), f.creation("a", "other")); errdefs.KindOf(err) != errdefs.KindAlreadyExists {
		t.Errorf("a different request for the name: %v, want AlreadyExists", err)
	}
	id, err := f.tab.Create(context.Background(), f.creation("a", "h1"))
	if err != nil {
		t.Fatal(err)
	}
	if f.makes.Load() != 1 {
		t.Errorf("the retry made another object (%d makes)", f.makes.Load())
	}
	if r, err := f.tab.Get(id[:8]); err != nil || r.Unclaimed || r.State != "up" {
		t.Errorf("claimed object: %+v, %v", r, err)
	}
	if _, err := f.tab.Create(context.Background(), f.creation("a", "h1")); errdefs.KindOf(err) != errdefs.KindAlreadyExists {
		t.Errorf("a second retry after the claim: %v, want AlreadyExists", err)
	}
}

func TestRetryDuringCreationWaitsForIt(t *testing.T) {
	f := newFixture(t, time.Minute)
	f.makeIn = make(chan struct{})
	first := make(chan string)
	go func() {
		id, _ := f.tab.Create(context.Background(), f.creation("a", "h1"))
		first <- id
	}()
	for f.makes.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan string)
	go func() {
		id, _ := f.tab.Create(context.Background(), f.creation("a", "h1"))
		second <- id
	}()
	time.Sleep(20 * time.Millisecond)
	close(f.makeIn)
	a, b := <-first, <-second
	if a == "" || a != b || f.makes.Load() != 1 {
		t.Fatalf("ids %q and %q after %d makes; want one object for both", a, b, f.makes.Load())
	}
}

func TestUnclaimedExpiresAfterTheGrace(t *testing.T) {
	f := newFixture(t, 50*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.tab.Create(ctx, f.creation("a", "h1")); err == nil {
		t.Fatal("a cancelled caller got a result")
	}
	select {
	case <-f.gone:
	case <-time.After(2 * time.Second):
		t.Fatal("the unclaimed object was not removed after the grace")
	}
	// The name is free again.
	if _, err := f.tab.Create(context.Background(), f.creation("a", "h2")); err != nil {
		t.Fatal(err)
	}
}

func TestRefusedUpdateChangesNothing(t *testing.T) {
	f := newFixture(t, time.Minute)
	id, err := f.tab.Create(context.Background(), f.creation("a", "h1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.tab.Update(id, func(r *rec) error { r.State = "down"; return nil }); err != nil {
		t.Fatal(err)
	}
	_, err = f.tab.Update(id, func(r *rec) error { r.State = "up"; r.SpecHash = "changed"; return nil })
	if errdefs.KindOf(err) != errdefs.KindFailedPrecondition {
		t.Fatalf("down -> up: %v, want FailedPrecondition", err)
	}
	if r, _ := f.tab.Get(id); r.State != "down" || r.SpecHash != "h1" {
		t.Errorf("a refused update changed the record: %+v", r)
	}
	if _, err := f.tab.Update(id, func(*rec) error { return ErrUnchanged }); !errors.Is(err, ErrUnchanged) {
		t.Errorf("declined update: %v", err)
	}
}

// After a restart, visible records come back, an unclaimed one gets a
// new grace, and a hidden one (interrupted creation) can only be undone.
func TestLoadAndAdoptAfterRestart(t *testing.T) {
	f := newFixture(t, 50*time.Millisecond)
	up, err := f.tab.Create(context.Background(), f.creation("up", "h"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.tab.Add(&rec{Meta: Meta{ID: "interrupted"}, Name: "x", State: "new"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.tab.Update(up, func(r *rec) error { r.Unclaimed = true; return nil }); err != nil {
		t.Fatal(err)
	}
	f.tab.Close()
	f.open(50 * time.Millisecond)
	recs, err := f.tab.Load()
	if err != nil || len(recs) != 2 {
		t.Fatalf("loaded %d records: %v", len(recs), err)
	}
	for _, r := range recs {
		f.tab.Adopt(r, f.abandon)
	}
	if _, err := f.tab.Get("interrupted"); errdefs.KindOf(err) != errdefs.KindNotFound {
		t.Errorf("an interrupted creation is visible: %v", err)
	}
	if _, err := f.tab.Update("interrupted", func(r *rec) error { r.State = "gone"; return nil }); err != nil {
		t.Errorf("undo of an interrupted creation: %v", err)
	}
	select {
	case id := <-f.gone:
		if id != up {
			t.Errorf("expired %s, want %s", id, up)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the unclaimed object did not expire after the restart")
	}
	if v, h := f.tab.Len(); v != 0 || h != 0 {
		t.Errorf("left %d visible and %d hidden records", v, h)
	}
}

func TestBeginAndPublishedBracketTheCreation(t *testing.T) {
	f := newFixture(t, time.Minute)
	var order []string
	c := f.creation("a", "h1")
	mk := c.Make
	c.Make = func(ctx context.Context, id string) (*rec, error) {
		order = append(order, "make")
		return mk(ctx, id)
	}
	c.Begin = func() func() {
		order = append(order, "begin")
		return func() { order = append(order, "end") }
	}
	c.Published = func(r *rec) { order = append(order, "published "+r.State) }
	if _, err := f.tab.Create(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	f.tab.Close() // waits for the creation goroutine, and so for end
	if got := strings.Join(order, ", "); got != "begin, make, published up, end" {
		t.Errorf("order: %s", got)
	}
}

// A visible record that becomes hidden (a removal finishing in the
// background) leaves Get, List and View and frees its name at once, and
// View hands out records that later updates do not change.
func TestHiddenAgainFreesTheName(t *testing.T) {
	f := newFixture(t, time.Minute)
	a, err := f.tab.Create(context.Background(), f.creation("a", "h1"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.tab.Create(context.Background(), f.creation("b", "h1"))
	if err != nil {
		t.Fatal(err)
	}
	all := func(*rec) bool { return true }
	view := f.tab.View(all)
	if len(view) != 2 || view[0].ID != a || view[1].ID != b {
		t.Fatalf("view: %+v, want a then b", view)
	}
	if _, err := f.tab.Update(a, func(r *rec) error { r.State = "new"; return nil }); err != nil {
		t.Fatal(err)
	}
	if view[0].State != "up" {
		t.Errorf("an update changed a record View handed out: %+v", view[0])
	}
	if _, err := f.tab.Get(a); errdefs.KindOf(err) != errdefs.KindNotFound {
		t.Errorf("hidden record still found: %v", err)
	}
	if l, v := f.tab.List(all), f.tab.View(all); len(l) != 1 || len(v) != 1 || v[0].ID != b {
		t.Errorf("hidden record still listed: %v %v", l, v)
	}
	if r, ok := f.tab.Hidden(a); !ok || r.State != "new" {
		t.Errorf("Hidden(%s) = %+v, %v", a, r, ok)
	}
	again, err := f.tab.Create(context.Background(), f.creation("a", "h2"))
	if err != nil || again == a {
		t.Fatalf("the name of a hidden record is not free: %s, %v", again, err)
	}
}
