// Package server is the CRI gRPC front end. Its handlers are thin: they
// validate and translate CRI messages into calls on the domain packages
// (sandbox, network, ...) and map domain errors onto gRPC status codes.
// One file per RPC family.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/images"
	"github.com/floe-cri/floe/internal/network"
	"github.com/floe-cri/floe/internal/sandbox"
)

// Deps are the domain services the handlers call.
type Deps struct {
	Config    *config.Config
	Sandboxes *sandbox.Manager
	Network   *network.Manager
	Images    *images.Service
	Log       *slog.Logger
}

// Server implements the CRI RuntimeService and ImageService. RPCs that are
// not implemented yet answer codes.Unimplemented through the embedded
// generated types (the ImageService is complete; gRPC requires the embed).
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer
	deps Deps
	log  *slog.Logger
	grpc *grpc.Server
}

// New builds the gRPC server with both CRI services registered.
func New(deps Deps) *Server {
	s := &Server{deps: deps, log: deps.Log}
	s.grpc = grpc.NewServer(
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.MaxRecvMsgSize(16<<20),
		grpc.MaxSendMsgSize(16<<20),
	)
	runtimeapi.RegisterRuntimeServiceServer(s.grpc, s)
	runtimeapi.RegisterImageServiceServer(s.grpc, s)
	return s
}

// Listen opens the unix socket, refusing to take over one that another
// live daemon is serving on.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s is served by another process; give each daemon its own --socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod socket %s: %w", path, err)
	}
	return l, nil
}

// Serve serves until the listener is closed or Shutdown is called.
func (s *Server) Serve(l net.Listener) error { return s.grpc.Serve(l) }

// Shutdown stops accepting RPCs and lets in-flight ones finish until the
// deadline, then cancels them.
func (s *Server) Shutdown(timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		s.log.Warn("in-flight RPCs did not finish in time; cancelling them", "timeout", timeout)
		s.grpc.Stop()
		<-done
	}
}

// unaryInterceptor logs each RPC, turns panics into Internal errors and
// maps domain errors to status codes.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in RPC handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "internal error in %s: %v", info.FullMethod, r)
		}
		err = toStatus(err)
		level := slog.LevelDebug
		if err != nil {
			level = slog.LevelWarn
		}
		s.log.Log(ctx, level, "rpc", "method", info.FullMethod, "took", time.Since(start), "err", err)
	}()
	return handler(ctx, req)
}

func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch errdefs.KindOf(err) {
	case errdefs.KindInvalidArgument:
		return status.Error(codes.InvalidArgument, err.Error())
	case errdefs.KindNotFound:
		return status.Error(codes.NotFound, err.Error())
	case errdefs.KindAlreadyExists:
		return status.Error(codes.AlreadyExists, err.Error())
	case errdefs.KindFailedPrecondition:
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

func invalid(field, format string, args ...any) error {
	return status.Error(codes.InvalidArgument, field+": "+fmt.Sprintf(format, args...))
}
