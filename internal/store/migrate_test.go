package store_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/objects"
	"github.com/floe-cri/floe/internal/sandbox"
	"github.com/floe-cri/floe/internal/store"
)

// writeUnversioned writes a database the way floe did before schema
// versions: the two record buckets, no meta bucket, no version key.
func writeUnversioned(t *testing.T, path string, records map[string]map[string][]byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for bucket, recs := range records {
			b, err := tx.CreateBucketIfNotExists([]byte(bucket))
			if err != nil {
				return err
			}
			for id, data := range recs {
				if err := b.Put([]byte(id), data); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A database of today's (version-less) pod and container records opens
// with the versioned store: it is stamped SchemaVersion, and every record
// reads back byte for byte and decodes into the same pod and container;
// opening it again changes nothing.
func TestOpenMigratesUnversionedDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "floe.db")
	pod := sandbox.Sandbox{Meta: objects.Meta{ID: strings.Repeat("a", 64), SpecHash: "h1", CreatedAt: 1}, State: sandbox.StateReady,
		NetnsName: "floe-aaaa", NetnsPath: "/run/netns/floe-aaaa", RunDir: "/run/floe/pods/aaaa", CgroupPath: "kubepods/besteffort/podx"}
	pod.Spec.Name, pod.Spec.Namespace, pod.Spec.UID = "web", "default", "uid-1"
	ctr := container.Container{Meta: objects.Meta{ID: strings.Repeat("b", 64), SpecHash: "h2", CreatedAt: 2}, SandboxID: pod.ID,
		State: container.StateRunning, Handler: "runc", ImageID: strings.Repeat("c", 64), ImageRef: "registry/busybox@sha256:" + strings.Repeat("d", 64)}
	ctr.Spec.Name = "app"
	podJSON, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	ctrJSON, err := json.Marshal(ctr)
	if err != nil {
		t.Fatal(err)
	}
	writeUnversioned(t, path, map[string]map[string][]byte{
		store.Sandboxes:  {pod.ID: podJSON},
		store.Containers: {ctr.ID: ctrJSON},
	})

	for open := 1; open <= 2; open++ {
		db, err := store.Open(path)
		if err != nil {
			t.Fatalf("open %d of an unversioned database: %v", open, err)
		}
		if v, err := db.Version(); err != nil || v != store.SchemaVersion {
			t.Errorf("open %d: version = %d, %v; want %d", open, v, err, store.SchemaVersion)
		}
		var pods []sandbox.Sandbox
		db.ForEach(store.Sandboxes, func(id string, data []byte) error {
			if !bytes.Equal(data, podJSON) {
				t.Errorf("pod record changed:\n%s\nwant\n%s", data, podJSON)
			}
			var p sandbox.Sandbox
			if err := json.Unmarshal(data, &p); err != nil {
				t.Errorf("pod record %s: %v", id, err)
			}
			pods = append(pods, p)
			return nil
		})
		var ctrs []container.Container
		db.ForEach(store.Containers, func(id string, data []byte) error {
			var c container.Container
			if err := json.Unmarshal(data, &c); err != nil {
				t.Errorf("container record %s: %v", id, err)
			}
			ctrs = append(ctrs, c)
			return nil
		})
		if len(pods) != 1 || !reflect.DeepEqual(pods[0], pod) || len(ctrs) != 1 || !reflect.DeepEqual(ctrs[0], ctr) {
			t.Errorf("open %d: records = %+v, %+v; want %+v, %+v", open, pods, ctrs, pod, ctr)
		}
		db.Close()
	}
}

// A database stamped by a newer floe is refused with an error that says
// so, and is left as it was.
func TestOpenRefusesNewerDatabase(t *testing.T) {
	for _, c := range []struct{ stamp, want string }{
		{"2", "schema version 2 is newer than this floe's 1"},
		{"two", `schema version "two" is not a version number`},
	} {
		path := filepath.Join(t.TempDir(), "floe.db")
		writeUnversioned(t, path, map[string]map[string][]byte{
			"meta":          {"schema_version": []byte(c.stamp)},
			store.Sandboxes: {"x": []byte(`{"id":"x","newField":1}`)},
		})
		db, err := store.Open(path)
		if err == nil {
			db.Close()
			t.Fatalf("stamp %q: a database this floe cannot read was opened", c.stamp)
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("stamp %q: error %q does not say %q and name %s", c.stamp, err, c.want, path)
		}
		raw, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		raw.View(func(tx *bolt.Tx) error {
			if got := string(tx.Bucket([]byte("meta")).Get([]byte("schema_version"))); got != c.stamp {
				t.Errorf("stamp %q: refused database now says %q", c.stamp, got)
			}
			return nil
		})
		raw.Close()
	}
}
