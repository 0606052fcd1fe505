package store

import (
	"encoding/json"
	"path/filepath"
	"testing"
)

func TestPutForEachDeleteSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "floe.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	type rec struct{ Name string }
	if err := db.Put(Sandboxes, "a", rec{"one"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Put(Sandboxes, "b", rec{"two"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(Sandboxes, "b"); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(Sandboxes, "never-there"); err != nil {
		t.Fatalf("deleting a missing record must succeed: %v", err)
	}
	db.Close()
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got []string
	db.ForEach(Sandboxes, func(id string, data []byte) error {
		var r rec
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		got = append(got, id+"="+r.Name)
		return nil
	})
	if len(got) != 1 || got[0] != "a=one" {
		t.Errorf("records after reopen = %v", got)
	}
}
