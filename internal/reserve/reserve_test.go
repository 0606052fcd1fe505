package reserve

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWaitersAndClaim(t *testing.T) {
	first, cancel := context.WithCancel(context.Background())
	c := New("id1", "h", first)
	if !c.Claimed() {
		t.Fatal("a live caller claims")
	}
	cancel()
	if c.Claimed() {
		t.Fatal("a gone caller does not claim")
	}
	retry := context.Background()
	c.AddWaiter(retry)
	if !c.Claimed() {
		t.Fatal("a retry claims")
	}
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if _, err := c.Wait(short, "sandbox"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait before finish: %v", err)
	}
	c.Finish(nil)
	if id, err := c.Wait(retry, "sandbox"); id != "id1" || err != nil {
		t.Fatalf("wait after finish: %q %v", id, err)
	}
	failed := New("id2", "h", retry)
	failed.Finish(errors.New("boom"))
	if _, err := failed.Wait(retry, "sandbox"); err == nil || err.Error() != "boom" {
		t.Fatalf("failed creation: %v", err)
	}
}
