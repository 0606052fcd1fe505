package container

import (
	"errors"
	"testing"
	"time"

	"github.com/floe-cri/floe/internal/objects"
)

func TestBroadcasterDropsSlowSubscriberWithoutBlocking(t *testing.T) {
	var b broadcaster
	fast := b.subscribe(8)
	slow := b.subscribe(4)
	defer fast.Close()
	received := make(chan int, 100)
	go func() {
		for {
			select {
			case ev := <-fast.C:
				received <- int(ev.Time.UnixNano())
			case <-fast.Done():
				return
			}
		}
	}()
	start := time.Now()
	for i := 1; i <= 50; i++ {
		b.publish(Event{Type: EventCreated, Time: time.Unix(0, int64(i)), Container: &Container{Meta: objects.Meta{ID: "c"}}})
		// Give the fast reader its turn, as a reading client has.
		for len(fast.C) > 4 {
			time.Sleep(time.Millisecond)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("publishing took %v", d)
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("slow subscriber was not dropped")
	}
	if !errors.Is(slow.Err(), ErrSlowSubscriber) {
		t.Fatalf("slow subscriber error = %v", slow.Err())
	}
	// What it had buffered is still readable.
	if len(slow.C) != 4 {
		t.Fatalf("slow subscriber kept %d events, want 4", len(slow.C))
	}
	for i := 1; i <= 50; i++ {
		select {
		case n := <-received:
			if n != i {
				t.Fatalf("fast subscriber got event %d, want %d", n, i)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("fast subscriber missed event %d", i)
		}
	}
	b.close()
	if !errors.Is(fast.Err(), ErrEventsClosed) {
		t.Fatalf("after close: %v", fast.Err())
	}
	if s := b.subscribe(1); !errors.Is(s.Err(), ErrEventsClosed) {
		t.Fatalf("subscribe after close: %v", s.Err())
	}
}
