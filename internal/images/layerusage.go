package images

import (
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// layerUsageTTL is how long a measured writable layer size is reused:
// the kubelet asks for every container's stats every few seconds and a
// walk of a big layer costs far more than that freshness is worth.
const layerUsageTTL = 10 * time.Second

type layerUsageCache struct {
	mu      sync.Mutex
	entries map[string]FsUsage // by container id
}

// ContainerLayerUsage measures a container's writable layer: the bytes
// and inodes the container wrote (the overlay upper directory, or the
// whole directory for vfs). Results are cached for layerUsageTTL.
func (s *Service) ContainerLayerUsage(containerID string) (FsUsage, error) {
	s.layerUsage.mu.Lock()
	u, ok := s.layerUsage.entries[containerID]
	s.layerUsage.mu.Unlock()
	if ok && time.Since(u.Timestamp) < layerUsageTTL {
		return u, nil
	}
	c, err := s.store.Container(containerID)
	if err != nil {
		return FsUsage{}, fmt.Errorf("container layer %s: %w", containerID, err)
	}
	root, driver := s.store.GraphRoot(), s.store.GraphDriverName()
	dir := filepath.Join(root, driver, c.LayerID)
	switch driver {
	case "overlay":
		dir = filepath.Join(dir, "diff")
	case "vfs":
		dir = filepath.Join(root, "vfs", "dir", c.LayerID)
	}
	u = diskUsage([]string{dir})
	u.Mountpoint, u.Timestamp = root, time.Now()
	s.layerUsage.mu.Lock()
	if s.layerUsage.entries == nil {
		s.layerUsage.entries = map[string]FsUsage{}
	}
	s.layerUsage.entries[containerID] = u
	// Forget containers that are gone, so the cache stays small.
	for id, e := range s.layerUsage.entries {
		if time.Since(e.Timestamp) > 10*layerUsageTTL {
			delete(s.layerUsage.entries, id)
		}
	}
	s.layerUsage.mu.Unlock()
	return u, nil
}
