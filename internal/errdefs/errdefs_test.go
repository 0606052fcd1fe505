package errdefs

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestKinds(t *testing.T) {
	for _, tc := range []struct {
		err  error
		kind Kind
		msg  string
	}{
		{InvalidArgument("config.metadata.name", "must not be empty"), KindInvalidArgument, "config.metadata.name: must not be empty"},
		{InvalidArgument("port", "%d is out of range", 70000), KindInvalidArgument, "port: 70000 is out of range"},
		{NotFound("pod %q not found", "abc"), KindNotFound, `pod "abc" not found`},
		{AlreadyExists("name %s is taken by %s", "web", "1234"), KindAlreadyExists, "name web is taken by 1234"},
		{FailedPrecondition("pod %s is not ready", "abc"), KindFailedPrecondition, "pod abc is not ready"},
		{errors.New("plain"), KindUnknown, "plain"},
		{nil, KindUnknown, ""},
	} {
		if got := KindOf(tc.err); got != tc.kind {
			t.Errorf("KindOf(%v) = %d, want %d", tc.err, got, tc.kind)
		}
		if tc.err != nil && tc.err.Error() != tc.msg {
			t.Errorf("message %q, want %q", tc.err.Error(), tc.msg)
		}
	}
}

// Context added by callers keeps the kind: the server maps the code from
// deep in the chain.
func TestKindSurvivesWrapping(t *testing.T) {
	base := NotFound("container %s not found", "c1")
	wrapped := fmt.Errorf("stop pod p1: %w", fmt.Errorf("stop containers: %w", base))
	if KindOf(wrapped) != KindNotFound {
		t.Errorf("KindOf(wrapped) = %d", KindOf(wrapped))
	}
	if !errors.Is(wrapped, base) {
		t.Error("errors.Is must find the classified error")
	}
	joined := errors.Join(errors.New("other"), FailedPrecondition("busy"))
	if KindOf(joined) != KindFailedPrecondition {
		t.Errorf("KindOf(joined) = %d", KindOf(joined))
	}
}

// The classified error unwraps to its cause, so a deadline inside
// stays visible to errors.Is; the outermost kind wins.
func TestKindWrapsCause(t *testing.T) {
	err := FailedPrecondition("runtime did not answer: %w", context.DeadlineExceeded)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("cause lost")
	}
	if KindOf(err) != KindFailedPrecondition {
		t.Errorf("kind %d", KindOf(err))
	}
	outer := NotFound("image: %w", InvalidArgument("image", "bad reference"))
	if KindOf(outer) != KindNotFound {
		t.Errorf("outer kind %d, want NotFound", KindOf(outer))
	}
}
