// Package errdefs gives domain errors a kind (invalid argument, not found,
// already exists, failed precondition) without tying the domain packages to
// gRPC; the server maps kinds onto status codes.
package errdefs

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the API layer.
type Kind int

// Error kinds.
const (
	KindUnknown Kind = iota
	KindInvalidArgument
	KindNotFound
	KindAlreadyExists
	KindFailedPrecondition
)

type kindError struct {
	kind Kind
	err  error
}

func (e *kindError) Error() string { return e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }

// InvalidArgument reports a bad request field, naming it.
func InvalidArgument(field, format string, args ...any) error {
	return &kindError{KindInvalidArgument, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))}
}

// NotFound reports a missing object.
func NotFound(format string, args ...any) error {
	return &kindError{KindNotFound, fmt.Errorf(format, args...)}
}

// AlreadyExists reports a name or id conflict.
func AlreadyExists(format string, args ...any) error {
	return &kindError{KindAlreadyExists, fmt.Errorf(format, args...)}
}

// FailedPrecondition reports a request that cannot be served in the
// current state of the node or object.
func FailedPrecondition(format string, args ...any) error {
	return &kindError{KindFailedPrecondition, fmt.Errorf(format, args...)}
}

// KindOf returns the kind of the first classified error in err's chain.
func KindOf(err error) Kind {
	var ke *kindError
	if errors.As(err, &ke) {
		return ke.kind
	}
	return KindUnknown
}
