package procmem

import (
	"encoding/json"
	"os"
	"testing"
)

func exeRSS(t *testing.T) (text, anon int64) {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range parseSmaps(data) {
		if m.path != exe {
			continue
		}
		if m.perms == "r-xp" || m.perms == "r--p" {
			text += m.rssKB
		}
		anon += m.anonKB
	}
	return text, anon
}

func TestReleaseStartupPagesDropsExecutablePages(t *testing.T) {
	before, anonBefore := exeRSS(t)
	if before == 0 {
		t.Fatal("no resident page of the executable found: smaps not parsed")
	}
	r, err := ReleaseStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	after, anonAfter := exeRSS(t)
	if r.Mappings == 0 || r.ExecutableKB == 0 || after >= before {
		t.Fatalf("released %+v; executable resident %d kB before, %d kB after", r, before, after)
	}
	// Code and read-only data come back from the file when used again.
	b, err := json.Marshal(map[string]int{"a": 1})
	if err != nil || string(b) != `{"a":1}` {
		t.Fatalf("after release: %s %v", b, err)
	}
	// Written pages (data, relocations) are never dropped.
	if anonAfter < anonBefore {
		t.Errorf("anonymous pages of the executable dropped: %d kB -> %d kB", anonBefore, anonAfter)
	}
}

func TestParseSmaps(t *testing.T) {
	in := `00400000-00404000 r--p 00000000 fe:00 123 /usr/bin/my prog
Size:                 16 kB
Rss:                  12 kB
Anonymous:             0 kB
VmFlags: rd mr mw me
025af000-025b2000 r--p 021ae000 fe:00 123 /usr/bin/my prog
Rss:                  12 kB
Anonymous:            12 kB
7ffd1000-7ffd3000 rw-p 00000000 00:00 0
Rss:                   8 kB
Anonymous:             8 kB
`
	got := parseSmaps([]byte(in))
	if len(got) != 3 {
		t.Fatalf("%d mappings: %+v", len(got), got)
	}
	want := []mapping{
		{start: 0x400000, end: 0x404000, perms: "r--p", path: "/usr/bin/my prog", rssKB: 12},
		{start: 0x25af000, end: 0x25b2000, perms: "r--p", path: "/usr/bin/my prog", rssKB: 12, anonKB: 12},
		{start: 0x7ffd1000, end: 0x7ffd3000, perms: "rw-p", rssKB: 8, anonKB: 8},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
