//go:build floe_failpoints

package failpoint

import "testing"

func TestHitKillsOnlyAtTheArmedStep(t *testing.T) {
	killed := ""
	current := ""
	old := killSelf
	killSelf = func() { killed = current; panic("killed") }
	t.Cleanup(func() { killSelf = old; Arm("") })

	hit := func(name string) (died bool) {
		current = name
		defer func() { died = recover() != nil }()
		Hit(name)
		return false
	}
	Arm("")
	if hit("sandbox.after-pin") {
		t.Fatal("an unarmed failpoint killed")
	}
	Arm("sandbox.after-pin")
	if hit("sandbox.after-record") {
		t.Fatal("another step killed")
	}
	if !hit("sandbox.after-pin") || killed != "sandbox.after-pin" {
		t.Fatalf("the armed step did not kill (killed %q)", killed)
	}
}

func BenchmarkHitUnarmed(b *testing.B) {
	Arm("")
	for i := 0; i < b.N; i++ {
		Hit("sandbox.after-pin")
	}
}
