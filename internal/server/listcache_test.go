package server

import (
	"fmt"
	"testing"
)

type cacheRec struct{ id, v string }
type cacheMsg struct{ text string }

// A message is built once per record version: again for a changed
// (swapped) record, and dropped once a complete list no longer has it.
func TestListCacheBuildsOncePerRecordVersion(t *testing.T) {
	var lc listCache[cacheRec, cacheMsg]
	builds := 0
	build := func(rs []*cacheRec) []*cacheMsg {
		out := make([]*cacheMsg, len(rs))
		for i, r := range rs {
			builds++
			out[i] = &cacheMsg{r.id + "=" + r.v}
		}
		return out
	}
	id := func(r *cacheRec) string { return r.id }
	texts := func(ms []*cacheMsg) string {
		s := ""
		for _, m := range ms {
			s += m.text + " "
		}
		return s
	}
	a, b := &cacheRec{"a", "1"}, &cacheRec{"b", "1"}
	if got := texts(lc.messages([]*cacheRec{a, b}, id, build, true)); got != "a=1 b=1 " || builds != 2 {
		t.Fatalf("first list %q, %d builds", got, builds)
	}
	first := lc.messages([]*cacheRec{a, b}, id, build, true)
	if builds != 2 {
		t.Errorf("unchanged records were built again: %d builds", builds)
	}
	// b is updated: a new record replaces it.
	b2 := &cacheRec{"b", "2"}
	got := lc.messages([]*cacheRec{a, b2}, id, build, true)
	if texts(got) != "a=1 b=2 " || builds != 3 || got[0] != first[0] {
		t.Errorf("after an update: %q, %d builds", texts(got), builds)
	}
	// A filtered list uses the cache but drops nothing.
	if got := texts(lc.messages([]*cacheRec{b2}, id, build, false)); got != "b=2 " || builds != 3 || len(lc.byID) != 2 {
		t.Errorf("filtered list %q, %d builds, %d cached", got, builds, len(lc.byID))
	}
	// a is removed.
	lc.messages([]*cacheRec{b2}, id, build, true)
	if _, ok := lc.byID["a"]; ok || len(lc.byID) != 1 {
		t.Errorf("a removed record stays cached: %v", lc.byID)
	}
	for i := range 3 {
		lc.messages([]*cacheRec{{fmt.Sprint(i), "x"}}, id, build, false)
	}
	if len(lc.byID) != 4 {
		t.Errorf("%d cached after three filtered lists of new records, want 4", len(lc.byID))
	}
}
