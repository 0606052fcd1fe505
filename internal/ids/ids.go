// Package ids makes the 64-hex identifiers of sandboxes and containers and
// resolves the unique prefixes users and the kubelet may pass instead.
package ids

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/floe-cri/floe/internal/errdefs"
)

// ErrNotFound is returned when no id has the prefix.
var ErrNotFound = errors.New("not found")

// ErrAmbiguous is returned when several ids have the prefix.
var ErrAmbiguous = errors.New("ambiguous id prefix")

// New returns a random 64-hex id.
func New() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // cannot happen on Linux
	}
	return hex.EncodeToString(b[:])
}

// Resolve finds the one id in candidates that starts with prefix. An exact
// match wins even if it is also a prefix of another id.
func Resolve(prefix string, candidates func(yield func(string) bool)) (string, error) {
	if prefix == "" {
		return "", fmt.Errorf("empty id: %w", ErrNotFound)
	}
	found := ""
	n := 0
	for id := range candidates {
		if id == prefix {
			return id, nil
		}
		if strings.HasPrefix(id, prefix) {
			found = id
			n++
		}
	}
	switch n {
	case 0:
		return "", fmt.Errorf("id %q: %w", prefix, ErrNotFound)
	case 1:
		return found, nil
	}
	return "", fmt.Errorf("id prefix %q matches %d ids: %w", prefix, n, ErrAmbiguous)
}

// Lookup resolves idOrPrefix among the keys of m for an API call: an
// unknown id is NotFound naming what ("pod sandbox", "container"), an
// ambiguous prefix InvalidArgument naming the request field.
func Lookup[V any](m map[string]V, idOrPrefix, what, field string) (string, error) {
	id, err := Resolve(idOrPrefix, maps.Keys(m))
	if errors.Is(err, ErrNotFound) {
		return "", errdefs.NotFound("%s %q not found", what, idOrPrefix)
	}
	if err != nil {
		return "", errdefs.InvalidArgument(field, "%v", err)
	}
	return id, nil
}
