package objects

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
)

// Meta is the part of a record the table itself reads and writes. Records
// embed it, so its fields sit at the top level of the stored JSON.
type Meta struct {
	ID string `json:"id"`
	// SpecHash identifies the content of the request that created the
	// object (see Hash), so a retry can be told from another request
	// that reuses the name.
	SpecHash  string `json:"specHash"`
	CreatedAt int64  `json:"createdAt"` // unix nanoseconds
	// Unclaimed marks an object whose creation finished after every
	// caller had given up: hidden from lists, handed to the retry, or
	// removed after the grace period.
	Unclaimed bool `json:"unclaimed,omitempty"`
}

func (m *Meta) meta() *Meta { return m }

// Record is a pointer to a record type that embeds Meta.
type Record[T any] interface {
	*T
	meta() *Meta
}

// Hash is the hash of a request's content (its JSON encoding).
func Hash(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Transitions is a state machine: the states each state may become. A
// change that keeps the state is always allowed.
type Transitions[S ~string] map[S][]S

// Allowed reports whether from may become to.
func (t Transitions[S]) Allowed(from, to S) bool {
	return from == to || slices.Contains(t[from], to)
}

// Match is what List filters share: an id prefix and labels that must
// all be present with these values (empty matches everything).
func Match(id, idPrefix string, labels, want map[string]string) bool {
	if !strings.HasPrefix(id, idPrefix) {
		return false
	}
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
