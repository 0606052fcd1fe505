package userns

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// SubIDUser is the default user whose /etc/subuid and /etc/subgid ranges
// floe hands out to pods with io.kubernetes.cri-o.userns-mode=auto, as
// CRI-O and podman do.
const SubIDUser = "containers"

// Allocator hands out non-overlapping id ranges from a user's subordinate
// ids. It keeps no state of its own beyond creations in flight: what is
// taken is read from the live pods' mappings each time, so allocations
// survive a restart of floe with the pods' records.
type Allocator struct {
	user, subuidPath, subgidPath string

	mu         sync.Mutex
	uids, gids []IDMap // HostID/Size of each subordinate range
	loadErr    error   // why uids/gids are empty, for the refusal
	pending    map[int]Mappings
	next       int
}

// NewAllocator makes an allocator of user's ranges in the subuid and
// subgid files and reads them (Load); a failed read is kept as the reason
// later allocations are refused, so the caller may only log it.
func NewAllocator(user, subuidPath, subgidPath string) (*Allocator, error) {
	a := &Allocator{user: user, subuidPath: subuidPath, subgidPath: subgidPath, pending: map[int]Mappings{}}
	return a, a.Load()
}

// Load reads the ranges again, e.g. on SIGHUP after an operator added
// some. Pods already running keep their ids; ranges that disappeared are
// simply no longer handed out.
func (a *Allocator) Load() error {
	uids, err := readSubIDs(a.subuidPath, a.user)
	var gids []IDMap
	if err == nil {
		gids, err = readSubIDs(a.subgidPath, a.user)
	}
	if err == nil && (len(uids) == 0 || len(gids) == 0) {
		err = fmt.Errorf("no ranges for user %q in %s and %s", a.user, a.subuidPath, a.subgidPath)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.uids, a.gids, a.loadErr = nil, nil, err
		return err
	}
	a.uids, a.gids, a.loadErr = uids, gids, nil
	return nil
}

// AutoStatus is what /info says about automatic user namespaces: where
// their ids come from, how many there are, or why there are none.
type AutoStatus struct {
	Source    string `json:"source"`
	Available bool   `json:"available"`
	UIDs      uint64 `json:"uids,omitempty"`
	GIDs      uint64 `json:"gids,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// Status reports the ranges as last loaded.
func (a *Allocator) Status() AutoStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := AutoStatus{Source: fmt.Sprintf("user %q in %s and %s", a.user, a.subuidPath, a.subgidPath), Available: a.loadErr == nil}
	if a.loadErr != nil {
		st.Reason = a.loadErr.Error()
	}
	for _, r := range a.uids {
		st.UIDs += uint64(r.Size)
	}
	for _, r := range a.gids {
		st.GIDs += uint64(r.Size)
	}
	return st
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
	if a.loadErr != nil {
		return Mappings{}, nil, fmt.Errorf("no subordinate ids: %w", a.loadErr)
	}
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
		return Mappings{}, nil, fmt.Errorf("no free range of %d uids left in the subordinate ids of %q", size, a.user)
	}
	g, ok := firstFree(a.gids, usedG, size)
	if !ok {
		return Mappings{}, nil, fmt.Errorf("no free range of %d gids left in the subordinate ids of %q", size, a.user)
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
