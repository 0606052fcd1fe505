package harness

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DaemonState is what one daemon keeps of its objects in its own
// directories: the image store's containers and layers, the run dir's
// bundles, exit files, attach socket dirs and pod dirs, and the records of
// its state database. The host-wide view (HostState) does not see these.
type DaemonState struct {
	Items map[string]map[string]bool // kind -> items
}

// Kind names of the daemon's own leftovers, as DaemonState reports them.
const (
	LeakStorageContainers = "storage containers"
	LeakStorageLayers     = "storage layers"
	LeakLayerDirs         = "storage layer/container dirs"
	LeakBundles           = "bundles"
	LeakExitFiles         = "exit files"
	LeakSocketDirs        = "attach socket dirs"
	LeakPodDirs           = "pod run dirs"
	LeakRunDir            = "other run dir entries"
	LeakDBRecords         = "database records"
)

// runDirKnown are the run dir's entries that belong to the daemon rather
// than to a pod or container.
var runDirKnown = map[string]bool{
	"containers": true, "exits": true, "s": true, "pods": true,
	"registries.conf.d": true, "registries.conf.empty": true,
}

// State reads the daemon's own state. The database is read only when the
// daemon is not running (bbolt's lock would make the daemon wait); a
// running daemon's records are checked through the CRI instead.
func (d *Daemon) State(t testing.TB) *DaemonState {
	t.Helper()
	s := &DaemonState{Items: map[string]map[string]bool{}}
	add := func(kind, item string) {
		if s.Items[kind] == nil {
			s.Items[kind] = map[string]bool{}
		}
		s.Items[kind][item] = true
	}
	for _, id := range storageIDs(filepath.Join(d.StorageRoot, "overlay-containers", "containers.json")) {
		add(LeakStorageContainers, id)
	}
	for _, f := range []string{
		filepath.Join(d.StorageRoot, "overlay-layers", "layers.json"),
		filepath.Join(d.StorageRunRoot, "overlay-layers", "volatile-layers.json"),
	} {
		for _, id := range storageIDs(f) {
			add(LeakStorageLayers, id)
		}
	}
	// Directories without a record (a crash between making the directory
	// and recording it) are leaks too.
	for _, name := range readDirNames(filepath.Join(d.StorageRoot, "overlay")) {
		if name != "l" {
			add(LeakLayerDirs, "overlay/"+name)
		}
	}
	for _, name := range readDirNames(filepath.Join(d.StorageRoot, "overlay-containers")) {
		if name != "containers.json" && name != "containers.lock" {
			add(LeakLayerDirs, "overlay-containers/"+name)
		}
	}
	for _, name := range readDirNames(filepath.Join(d.RunDir, "containers")) {
		add(LeakBundles, name)
	}
	for _, handler := range readDirNames(filepath.Join(d.RunDir, "exits")) {
		for _, name := range readDirNames(filepath.Join(d.RunDir, "exits", handler)) {
			add(LeakExitFiles, handler+"/"+name)
		}
	}
	for _, name := range readDirNames(filepath.Join(d.RunDir, "s")) {
		add(LeakSocketDirs, name)
	}
	for _, name := range readDirNames(filepath.Join(d.RunDir, "pods")) {
		add(LeakPodDirs, name)
	}
	for _, name := range readDirNames(d.RunDir) {
		if !runDirKnown[name] {
			add(LeakRunDir, name)
		}
	}
	if !d.Running() {
		for _, r := range dbRecords(t, filepath.Join(d.StateDir, "floe.db")) {
			add(LeakDBRecords, r)
		}
	}
	return s
}

// Leaks returns what now has that s (the state before) did not, by kind.
func (s *DaemonState) Leaks(now *DaemonState) map[string][]string {
	out := map[string][]string{}
	for kind, items := range now.Items {
		if extra := newItems(s.Items[kind], items); len(extra) > 0 {
			out[kind] = extra
		}
	}
	return out
}

// storageIDs reads the ids of a containers/storage JSON list
// (containers.json, layers.json).
func storageIDs(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var items []struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(data, &items) != nil {
		return []string{"unreadable " + path}
	}
	var out []string
	for _, it := range items {
		out = append(out, it.ID)
	}
	sort.Strings(out)
	return out
}

// dbRecords lists "bucket/key" for every record of the state database.
func dbRecords(t testing.TB, path string) []string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open state database %s: %v", path, err)
	}
	defer db.Close()
	var out []string
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(bucket []byte, b *bolt.Bucket) error {
			if string(bucket) == "meta" {
				return nil // the database's schema version (internal/store), not a record
			}
			return b.ForEach(func(k, _ []byte) error {
				out = append(out, string(bucket)+"/"+string(k))
				return nil
			})
		})
	})
	if err != nil {
		t.Fatalf("read state database %s: %v", path, err)
	}
	return out
}
