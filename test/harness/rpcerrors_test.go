package harness

import (
	"context"
	"errors"
	"io"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The crash test's load clients stop on their first error; only what a
// kill explains may pass, everything floe answered while alive fails.
func TestClassifyKillError(t *testing.T) {
	for _, c := range []struct {
		name           string
		err            error
		clientCanceled bool
		kind           string
		expected       bool
	}{
		{"unavailable", status.Error(codes.Unavailable, "error reading from server: EOF"), false, RPCUnavailable, true},
		{"refused", status.Error(codes.Unavailable, "connection error: dial unix floe.sock: connect: connection refused"), false, RPCUnavailable, true},
		{"canceled by us", status.Error(codes.Canceled, "context canceled"), true, RPCCanceled, true},
		{"canceled, not by us", status.Error(codes.Canceled, "context canceled"), false, "unexpected Canceled", false},
		{"our connection closed", status.Error(codes.Canceled, "grpc: the client connection is closing"), false, RPCCanceled, true},
		{"deadline: a hang", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), true, "unexpected DeadlineExceeded", false},
		{"floe's own EOF", status.Error(codes.Unknown, "read config: unexpected EOF"), false, "unexpected Unknown", false},
		{"internal", status.Error(codes.Internal, "internal error in /runtime.v1.RuntimeService/RunPodSandbox: boom"), false, "unexpected Internal", false},
		{"not found", status.Error(codes.NotFound, "container abc"), false, "unexpected NotFound", false},
		{"transport EOF", io.ErrUnexpectedEOF, false, RPCConnLost, true},
		{"transport reset", syscall.ECONNRESET, false, RPCConnLost, true},
		{"other", errors.New("something else"), false, "unexpected non-gRPC error", false},
		{"plain context error", context.DeadlineExceeded, false, "unexpected non-gRPC error", false},
	} {
		kind, expected := ClassifyKillError(c.err, c.clientCanceled)
		if kind != c.kind || expected != c.expected {
			t.Errorf("%s: ClassifyKillError(%v) = %q, %v; want %q, %v", c.name, c.err, kind, expected, c.kind, c.expected)
		}
	}
}
