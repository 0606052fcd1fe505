package sandbox

import (
	"strings"
	"testing"

	"github.com/floe-cri/floe/internal/objects"
)

func TestNetnsNameIsReadableSafeAndBounded(t *testing.T) {
	id := strings.Repeat("f", 64)
	if got := netnsName(Spec{Namespace: "kube-system", Name: "coredns-5d78c9869d-abcde"}, id); got != "kube-system_coredns-5d78c9869d-abcde-ffffffff" {
		t.Errorf("got %q", got)
	}
	got := netnsName(Spec{Namespace: "ns/../x", Name: strings.Repeat("n", 200)}, id)
	if strings.Contains(got, "/") || len(got) > 70 || !strings.HasSuffix(got, "-ffffffff") {
		t.Errorf("unsafe or unbounded name %q", got)
	}
}

func TestSpecHashTellsRetriesFromNewPods(t *testing.T) {
	a := Spec{Name: "p", Namespace: "n", UID: "u", Labels: map[string]string{"x": "1", "y": "2"}}
	b := Spec{Name: "p", Namespace: "n", UID: "u", Labels: map[string]string{"y": "2", "x": "1"}}
	if a.hash() != b.hash() {
		t.Errorf("the same request must hash the same")
	}
	b.Hostname = "other"
	if a.hash() == b.hash() {
		t.Errorf("a different request must hash differently")
	}
	if a.reservationKey() != "p_n_u_0" {
		t.Errorf("key %q", a.reservationKey())
	}
}

func TestFilter(t *testing.T) {
	sb := &Sandbox{Meta: objects.Meta{ID: "abcdef"}, State: StateReady, Spec: Spec{Labels: map[string]string{"app": "web"}}}
	cases := []struct {
		f    Filter
		want bool
	}{
		{Filter{}, true},
		{Filter{IDPrefix: "abc"}, true},
		{Filter{IDPrefix: "abd"}, false},
		{Filter{IDPrefix: "abcdefg"}, false},
		{Filter{State: StateNotReady}, false},
		{Filter{Labels: map[string]string{"app": "web"}}, true},
		{Filter{Labels: map[string]string{"app": "db"}}, false},
		{Filter{Labels: map[string]string{"tier": ""}}, false},
	}
	for _, c := range cases {
		if got := c.f.match(sb); got != c.want {
			t.Errorf("%+v: got %v", c.f, got)
		}
	}
}
