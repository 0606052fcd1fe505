package userns

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// SubIDUser is the user whose /etc/subuid and /etc/subgid ranges floe
// hands out to pods with io.kubernetes.cri-o.userns-mode=auto, as CRI-O
// and podman do.
const SubIDUser = "containers"

// Allocator hands out non-overlapping id ranges from a user's subordinate
// ids. It keeps no state of its own beyond creations in flight: what is
// taken is read from the live pods' mappings each time, so allocations
// survive a restart of floe with the pods' records.
type Allocator struct {
	uids, gids []IDMap // HostID/Size of each subordinate range
	mu         sync.Mutex
	pending    map[int]Mappings
	next       int
}

// LoadSubIDs reads user's ranges from the subuid and subgid files.
func LoadSubIDs(user, subuidPath, subgidPath string) (*Allocator, error) {
	uids, err := readSubIDs(subuidPath, user)
	if err != nil {
		return nil, err
	}
	gids, err := readSubIDs(subgidPath, user)
	if err != nil {
		return nil, err
	}
	if len(uids) == 0 || len(gids) == 0 {
		return nil, fmt.Errorf("no ranges for user %q in %s and %s", user, subuidPath, subgidPath)
	}
	return &Allocator{uids: uids, gids: gids, pending: map[int]Mappings{}}, nil
}

func readSubIDs(path, user string) ([]IDMap, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []IDMap
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 3 || f[0] != user {
			continue
		}
		start, err1 := strconv.ParseUint(f[1], 10, 32)
		size, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil || size == 0 || start+size > 1<<32-1 {
			return nil, fmt.Errorf("%s: bad line %q", path, line)
		}
		out = append(out, IDMap{HostID: uint32(start), Size: uint32(size)})
	}
	return out, sc.Err()
}

// Allocate picks size uids and gids that overlap neither the mappings in
// use (every pod's, whoever chose them) nor other allocations not yet
// recorded. release must be called once the pod is recorded (or failed).
func (a *Allocator) Allocate(size uint32, inUse []*Mappings) (Mappings, func(), error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var usedU, usedG []IDMap
	for _, m := range inUse {
		if m != nil {
			usedU, usedG = append(usedU, m.UIDs...), append(usedG, m.GIDs...)
		}
	}
	for _, m := range a.pending {
		usedU, usedG = append(usedU, m.UIDs...), append(usedG, m.GIDs...)
	}
	u, ok := firstFree(a.uids, usedU, size)
	if !ok {
		return Mappings{}, nil, fmt.Errorf("no free range of %d uids left in the subordinate ids of %q", size, SubIDUser)
	}
	g, ok := firstFree(a.gids, usedG, size)
	if !ok {
		return Mappings{}, nil, fmt.Errorf("no free range of %d gids left in the subordinate ids of %q", size, SubIDUser)
	}
	m := Mappings{UIDs: []IDMap{{ContainerID: 0, HostID: u, Size: size}}, GIDs: []IDMap{{ContainerID: 0, HostID: g, Size: size}}}
	a.next++
	key := a.next
	a.pending[key] = m
	var once sync.Once
	return m, func() {
		once.Do(func() {
			a.mu.Lock()
			delete(a.pending, key)
			a.mu.Unlock()
		})
	}, nil
}

// firstFree is the lowest host id inside one of ranges where size ids
// overlap none of used.
func firstFree(ranges, used []IDMap, size uint32) (uint32, bool) {
	for _, r := range ranges {
		start, end := uint64(r.HostID), uint64(r.HostID)+uint64(r.Size)
		// Skip past every range in use that overlaps the candidate until
		// none does: a skip can land inside another one.
		for moved := true; moved && start+uint64(size) <= end; {
			moved = false
			for _, u := range used {
				us, ue := uint64(u.HostID), uint64(u.HostID)+uint64(u.Size)
				if ue > start && us < start+uint64(size) {
					start, moved = ue, true
				}
			}
		}
		if start+uint64(size) <= end {
			return uint32(start), true
		}
	}
	return 0, false
}
