package server

import "sync"

// listCache keeps the list message built from each record (a
// runtimeapi.Container from a container.Container, ...) for as long as
// that record is current. Records are never changed in place (an update
// swaps in a changed copy, see objects.Table.View), so the same record
// pointer means the same content, and the message built from it can be
// handed out again. The kubelet lists every pod and container every
// second or so; with hundreds of them, rebuilding all the messages each
// time made the garbage collector run every few dozen lists, which is
// what the slowest lists waited for.
//
// A cached message is shared by every response that includes it: gRPC
// only reads it (protobuf marshalling of one message from several
// goroutines is safe) and nothing else may change it.
type listCache[R any, M any] struct {
	mu   sync.Mutex
	gen  uint64
	byID map[string]listEntry[R, M]
}

type listEntry[R any, M any] struct {
	rec *R
	msg *M
	gen uint64 // the last complete list that saw it
}

// messages returns the message of every record of recs, in order,
// building (with build, in one call) those of records that changed or are
// new. complete says recs is every record there is (an unfiltered list):
// the entries of records no longer there are then dropped.
func (lc *listCache[R, M]) messages(recs []*R, id func(*R) string, build func([]*R) []*M, complete bool) []*M {
	out := make([]*M, len(recs))
	var missing []*R
	var missingAt []int
	lc.mu.Lock()
	if lc.byID == nil {
		lc.byID = map[string]listEntry[R, M]{}
	}
	if complete {
		lc.gen++
	}
	for i, r := range recs {
		e, ok := lc.byID[id(r)]
		if ok && e.rec == r {
			out[i] = e.msg
			if complete {
				e.gen = lc.gen
				lc.byID[id(r)] = e
			}
			continue
		}
		missing = append(missing, r)
		missingAt = append(missingAt, i)
	}
	lc.mu.Unlock()
	if len(missing) == 0 && !complete {
		return out
	}
	built := build(missing)
	lc.mu.Lock()
	defer lc.mu.Unlock()
	for j, i := range missingAt {
		out[i] = built[j]
		lc.byID[id(missing[j])] = listEntry[R, M]{rec: missing[j], msg: built[j], gen: lc.gen}
	}
	if complete {
		for k, e := range lc.byID {
			if e.gen != lc.gen {
				delete(lc.byID, k)
			}
		}
	}
	return out
}
