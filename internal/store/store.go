// Package store keeps floe's durable metadata in an embedded bbolt
// database. Records are JSON documents in one bucket per kind, written (and
// fsynced by bbolt) before the side effects they describe are exposed, so a
// restart after kill -9 can find and finish or undo every operation. The
// database carries a schema version (SchemaVersion, in the meta bucket):
// Open migrates an older one and refuses one a newer floe wrote.
package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket names.
const (
	Sandboxes  = "sandboxes"
	Containers = "containers"
	// meta holds the database's own keys (versionKey); no records.
	meta = "meta"
)

// SchemaVersion is the version of the database layout and record format
// this floe writes. Open migrates an older database to it and refuses a
// newer one. Bump it, and append a migration, whenever a stored record
// changes in a way the previous floe could not read or would misread.
const SchemaVersion = 1

// versionKey in the meta bucket holds the schema version, in decimal.
var versionKey = []byte("schema_version")

// migrations[v] turns a database at version v into one at v+1. Each runs
// in the transaction that then stamps v+1, so a crash mid-migration leaves
// the old version intact, to be migrated again at the next start.
var migrations = []func(tx *bolt.Tx) error{
	0: migrateUnversioned,
}

// migrateUnversioned takes a database of floe from before schema versions
// (version 0: no meta bucket) to version 1. Version 1 keeps version 0's
// records unchanged (one JSON document per pod or container, keyed by id,
// in the sandboxes and containers buckets) and only adds the version
// stamp; the migration makes sure both buckets exist, as Open always did.
func migrateUnversioned(tx *bolt.Tx) error {
	for _, b := range []string{Sandboxes, Containers} {
		if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
			return fmt.Errorf("bucket %s: %w", b, err)
		}
	}
	return nil
}

// DB is the state database.
type DB struct {
	db *bolt.DB
}

// Open opens (creating if needed) the database at path.
func Open(path string) (*DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	if err := db.Update(upgrade); err != nil {
		db.Close()
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	return &DB{db: db}, nil
}

// upgrade brings a database (new, unversioned or older) to SchemaVersion,
// or refuses one a newer floe wrote: this floe would misread its records,
// and rewriting them would lose what it does not know.
func upgrade(tx *bolt.Tx) error {
	m, err := tx.CreateBucketIfNotExists([]byte(meta))
	if err != nil {
		return fmt.Errorf("bucket %s: %w", meta, err)
	}
	v := 0
	if raw := m.Get(versionKey); raw != nil {
		if v, err = strconv.Atoi(string(raw)); err != nil || v < 0 {
			return fmt.Errorf("schema version %q is not a version number", raw)
		}
	}
	if v > SchemaVersion {
		return fmt.Errorf("schema version %d is newer than this floe's %d (a newer floe wrote it): refusing to open it; run that floe version or newer, or move the state dir aside to start empty", v, SchemaVersion)
	}
	for ; v < SchemaVersion; v++ {
		if err := migrations[v](tx); err != nil {
			return fmt.Errorf("migrate schema version %d to %d: %w", v, v+1, err)
		}
	}
	if err := m.Put(versionKey, []byte(strconv.Itoa(SchemaVersion))); err != nil {
		return fmt.Errorf("stamp schema version %d: %w", SchemaVersion, err)
	}
	return nil
}

// Version is the schema version of the open database (SchemaVersion once
// Open succeeded).
func (d *DB) Version() (int, error) {
	var v int
	err := d.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket([]byte(meta)).Get(versionKey)
		var err error
		v, err = strconv.Atoi(string(raw))
		return err
	})
	return v, err
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// Put stores v as the record id of bucket.
func (d *DB) Put(bucket, id string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s record %s: %w", bucket, id, err)
	}
	err = d.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucket)).Put([]byte(id), data)
	})
	if err != nil {
		return fmt.Errorf("store %s record %s: %w", bucket, id, err)
	}
	return nil
}

// Delete removes a record; a missing record is not an error.
func (d *DB) Delete(bucket, id string) error {
	err := d.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucket)).Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("delete %s record %s: %w", bucket, id, err)
	}
	return nil
}

// ForEach calls fn with every record of bucket, raw, in key order.
func (d *DB) ForEach(bucket string, fn func(id string, data []byte) error) error {
	return d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucket)).ForEach(func(k, v []byte) error {
			return fn(string(k), append([]byte(nil), v...))
		})
	})
}
