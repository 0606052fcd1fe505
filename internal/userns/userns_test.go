package userns

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	one := []IDMap{{ContainerID: 0, HostID: 65536, Size: 65536}}
	if err := (Mappings{UIDs: one, GIDs: one}).Check(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		m     Mappings
		field string
	}{
		"two uid mappings": {Mappings{UIDs: append(one, one...), GIDs: one}, "uids"},
		"no gid mapping":   {Mappings{UIDs: one}, "gids"},
		"root unmapped":    {Mappings{UIDs: one, GIDs: []IDMap{{ContainerID: 1, HostID: 1, Size: 10}}}, "gids[0].container_id"},
		"empty":            {Mappings{UIDs: []IDMap{{HostID: 1}}, GIDs: one}, "uids[0].length"},
		"overflow":         {Mappings{UIDs: []IDMap{{HostID: 1 << 31, Size: 1 << 31}}, GIDs: one}, "uids[0]"},
	} {
		var fe *FieldError
		if err := tc.m.Check(); !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: %v, want field %s", name, err, tc.field)
		}
	}
}

func TestTraversable(t *testing.T) {
	dir := t.TempDir()
	inner := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := Traversable(inner); err != nil && !strings.Contains(err.Error(), os.TempDir()) {
		t.Errorf("searchable path: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, "a"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Traversable(inner); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "a")+" ") {
		t.Errorf("0700 ancestor: %v", err)
	}
}

func TestUnescapeMountPath(t *testing.T) {
	if got := unescapeMountPath(`/a\040b/c\011d`); got != "/a b/c\td" {
		t.Errorf("got %q", got)
	}
	if got := unescapeMountPath(`/plain`); got != "/plain" {
		t.Errorf("got %q", got)
	}
}

func TestEqualAndFormat(t *testing.T) {
	a := &Mappings{UIDs: []IDMap{{0, 1000, 10}}, GIDs: []IDMap{{0, 1000, 10}}}
	b := &Mappings{UIDs: []IDMap{{0, 1000, 10}}, GIDs: []IDMap{{0, 2000, 10}}}
	if !a.Equal(a) || a.Equal(b) || a.Equal(nil) {
		t.Error("Equal")
	}
	if got := Format(a.UIDs); got != "0 1000 10\n" {
		t.Errorf("Format %q", got)
	}
}
