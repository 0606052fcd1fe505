package podfiles

import (
	"os"
	"path/filepath"
	"testing"
)

func TestResolvConf(t *testing.T) {
	got, err := ResolvConf(DNS{Servers: []string{"1.2.3.4"}, Searches: []string{"a.b"}, Options: []string{"ndots:5", "edns0"}}, "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	if want := "search a.b\nnameserver 1.2.3.4\noptions ndots:5 edns0\n"; string(got) != want {
		t.Errorf("got %q want %q", got, want)
	}
	host := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(host, []byte("nameserver 9.9.9.9\n"), 0o644)
	if got, _ := ResolvConf(DNS{}, host); string(got) != "nameserver 9.9.9.9\n" {
		t.Errorf("empty DNS config must copy the host file, got %q", got)
	}
}

func TestValidateDNS(t *testing.T) {
	if err := ValidateDNS(DNS{Servers: []string{"::1", "10.0.0.1"}}); err != nil {
		t.Errorf("valid servers refused: %v", err)
	}
	for _, bad := range []DNS{{Servers: []string{"dns.local"}}, {Searches: []string{"a b"}}, {Options: []string{""}}} {
		if err := ValidateDNS(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
