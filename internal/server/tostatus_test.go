package server

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/floe-cri/floe/internal/errdefs"
)

// Every error kind reaches the kubelet as its gRPC code, however deep in
// the chain, with the message intact.
func TestToStatusMapsEveryKind(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("run pod p1: %w", err) }
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{errdefs.InvalidArgument("config.metadata.name", "empty"), codes.InvalidArgument},
		{errdefs.NotFound("pod %s not found", "p1"), codes.NotFound},
		{errdefs.AlreadyExists("name taken"), codes.AlreadyExists},
		{errdefs.FailedPrecondition("pod not ready"), codes.FailedPrecondition},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{errors.New("runc failed"), codes.Unknown},
		{status.Error(codes.ResourceExhausted, "no ids left"), codes.ResourceExhausted},
	} {
		for _, err := range []error{tc.err, wrap(tc.err)} {
			st := toStatus(err)
			if status.Code(st) != tc.code {
				t.Errorf("toStatus(%v) = %v, want %v", err, status.Code(st), tc.code)
			}
			// A gRPC status passes through as it is.
			if s, _ := status.FromError(st); s.Message() != err.Error() && st != err {
				t.Errorf("message %q, want %q", s.Message(), err.Error())
			}
		}
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) must be nil")
	}
}
