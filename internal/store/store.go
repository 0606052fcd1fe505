// Package store keeps floe's durable metadata in an embedded bbolt
// database. Records are JSON documents in one bucket per kind, written (and
// fsynced by bbolt) before the side effects they describe are exposed, so a
// restart after kill -9 can find and finish or undo every operation.
package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket names.
const (
	Sandboxes  = "sandboxes"
	Containers = "containers"
)

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
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{Sandboxes, Containers} {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise state database %s: %w", path, err)
	}
	return &DB{db: db}, nil
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
