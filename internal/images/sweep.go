package images

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.podman.io/storage/pkg/lockfile"
)

// sweepTempFiles removes the temporary files the store's atomic metadata
// writes (containers.json, layers.json, images.json, mountpoints.json)
// leave when the process writing them is killed between creating the
// temporary file and renaming it into place. The store never looks at
// them again, so every crash during a write would add one. Each directory
// is swept under the lock the store's writers hold while writing, so a
// temporary file seen there belongs to no writer, in this process or in
// another one sharing the store (podman).
func sweepTempFiles(root, runRoot, driver string) (removed []string, err error) {
	dirs := []struct{ dir, lock string }{
		{filepath.Join(root, driver+"-containers"), "containers.lock"},
		{filepath.Join(root, driver+"-layers"), "layers.lock"},
		{filepath.Join(root, driver+"-images"), "images.lock"},
		{filepath.Join(runRoot, driver+"-layers"), "mountpoints.lock"},
	}
	var errs []error
	for _, d := range dirs {
		names, err := tempFiles(d.dir)
		if err != nil || len(names) == 0 {
			errs = append(errs, err)
			continue
		}
		lock, err := lockfile.GetLockFile(filepath.Join(d.dir, d.lock))
		if err != nil {
			errs = append(errs, fmt.Errorf("lock %s: %w", d.dir, err))
			continue
		}
		lock.Lock()
		// Listed again under the lock: a writer may have finished since.
		names, err = tempFiles(d.dir)
		for _, n := range names {
			p := filepath.Join(d.dir, n)
			if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				errs = append(errs, rerr)
			} else {
				removed = append(removed, p)
			}
		}
		lock.Unlock()
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// tempFiles lists dir's temporary files of interrupted atomic writes.
func tempFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasPrefix(e.Name(), ".tmp-") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
