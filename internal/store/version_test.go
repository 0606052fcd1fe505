package store

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// A migration that fails leaves the database as it was (not stamped, so
// the next start migrates again) and Open fails naming the step.
func TestFailedMigrationLeavesDatabaseUnstamped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "floe.db")
	raw, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte(Sandboxes))
		return b.Put([]byte("p"), []byte(`{"id":"p"}`))
	})
	raw.Close()

	saved := migrations[0]
	migrations[0] = func(tx *bolt.Tx) error {
		tx.Bucket([]byte(Sandboxes)).Delete([]byte("p")) // undone with the transaction
		return errors.New("disk on fire")
	}
	_, err = Open(path)
	migrations[0] = saved
	if err == nil || !strings.Contains(err.Error(), "migrate schema version 0 to 1: disk on fire") {
		t.Fatalf("Open with a failing migration: %v", err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatalf("the next open, with the migration working: %v", err)
	}
	defer db.Close()
	n := 0
	db.ForEach(Sandboxes, func(string, []byte) error { n++; return nil })
	if v, _ := db.Version(); v != SchemaVersion || n != 1 {
		t.Errorf("after the retried migration: version %d, %d records; want %d, 1", v, n, SchemaVersion)
	}
}
