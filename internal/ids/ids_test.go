package ids

import (
	"errors"
	"slices"
	"testing"
)

func TestNewIs64Hex(t *testing.T) {
	a, b := New(), New()
	if len(a) != 64 || a == b {
		t.Fatalf("ids %q %q", a, b)
	}
}

func TestResolve(t *testing.T) {
	all := []string{"abc123", "abd456", "abc"}
	seq := slices.Values(all)
	cases := map[string]error{"abc1": nil, "abd": nil, "abc": nil, "ab": ErrAmbiguous, "x": ErrNotFound, "": ErrNotFound}
	for prefix, want := range cases {
		_, err := Resolve(prefix, seq)
		if !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Errorf("Resolve(%q) = %v, want %v", prefix, err, want)
		}
	}
	if id, _ := Resolve("abc", seq); id != "abc" {
		t.Errorf("an exact match must win over longer ids: %q", id)
	}
}
