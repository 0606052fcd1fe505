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
	"path"
	"runtime/debug"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"

	"github.com/floe-cri/floe/internal/cgroups"
	"github.com/floe-cri/floe/internal/checkpoint"
	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/handlerprobe"
	"github.com/floe-cri/floe/internal/images"
	"github.com/floe-cri/floe/internal/lsm"
	"github.com/floe-cri/floe/internal/metrics"
	"github.com/floe-cri/floe/internal/network"
	"github.com/floe-cri/floe/internal/ocifeatures"
	"github.com/floe-cri/floe/internal/sandbox"
	"github.com/floe-cri/floe/internal/stats"
	"github.com/floe-cri/floe/internal/userns"
)

// Deps are the domain services the handlers call.
type Deps struct {
	Config    *config.Config
	Sandboxes *sandbox.Manager
	// Cgroups is what the host's cgroup hierarchy can hold (reported in
	// the verbose Status).
	Cgroups *cgroups.Support
	// Containers is nil when no container monitor could be set up.
	Containers *container.Manager
	Network    *network.Manager
	Images     *images.Service
	Metrics    *metrics.Metrics
	// HandlerFeatures are what each runtime handler's features document
	// says it supports, probed at startup.
	HandlerFeatures map[string]ocifeatures.Features
	// Userns is whether pods may have a user namespace here, and how.
	Userns userns.Support
	// LSM is which Linux security modules the host enforces (the zero
	// value: none).
	LSM lsm.Host
	// SubIDs hands out ids for io.kubernetes.cri-o.userns-mode=auto; nil
	// when user "containers" has no subordinate ids.
	SubIDs *userns.Allocator
	// Probes are the latest trial container of each handler; a handler
	// whose probe failed is refused (nil: every handler is usable).
	Probes *handlerprobe.Registry
	// Checkpoint is whether criu works on this host (nil: not detected,
	// checkpoint/restore is Unimplemented).
	Checkpoint *checkpoint.Support
	// Stats reads cgroup usage.
	Stats *stats.Reader
	// Streaming serves the URLs Exec, Attach and PortForward return.
	Streaming streaming.Server
	// ServerOptions are extra gRPC server options (tracing's stats
	// handler when it is on).
	ServerOptions []grpc.ServerOption
	Log           *slog.Logger
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

	// quit is closed when shutdown starts, ending streams that would
	// otherwise never finish (GetContainerEvents).
	quit     chan struct{}
	quitOnce sync.Once

	// The messages ListContainers and ListPodSandbox built, per record.
	ctrList listCache[container.Container, runtimeapi.Container]
	podList listCache[sandbox.Sandbox, runtimeapi.PodSandbox]
}

// New builds the gRPC server with both CRI services registered.
func New(deps Deps) *Server {
	s := &Server{deps: deps, log: deps.Log, quit: make(chan struct{})}
	s.grpc = grpc.NewServer(append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
		grpc.MaxRecvMsgSize(16 << 20),
		grpc.MaxSendMsgSize(16 << 20),
	}, deps.ServerOptions...)...)
	runtimeapi.RegisterRuntimeServiceServer(s.grpc, s)
	runtimeapi.RegisterImageServiceServer(s.grpc, s)
	return s
}

// Serve serves until the listener is closed or Shutdown is called.
func (s *Server) Serve(l net.Listener) error { return s.grpc.Serve(l) }

// Shutdown stops accepting RPCs and lets in-flight ones finish until the
// deadline, then cancels them.
func (s *Server) Shutdown(timeout time.Duration) {
	s.quitOnce.Do(func() { close(s.quit) })
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

// streamInterceptor does for streaming RPCs what unaryInterceptor does.
func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in streaming RPC handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "internal error in %s: %v", info.FullMethod, r)
		}
		s.observe(ss.Context(), info.FullMethod, start, toStatus(err))
	}()
	return handler(srv, ss)
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
		s.observe(ctx, info.FullMethod, start, err, idAttrs(req)...)
	}()
	return handler(ctx, req)
}

// idAttrs names the pod and container a request is about, so every log
// line about a pod carries its id.
func idAttrs(req any) []any {
	var attrs []any
	if r, ok := req.(interface{ GetPodSandboxId() string }); ok && r.GetPodSandboxId() != "" {
		attrs = append(attrs, "pod", r.GetPodSandboxId())
	}
	if r, ok := req.(interface{ GetContainerId() string }); ok && r.GetContainerId() != "" {
		attrs = append(attrs, "container", r.GetContainerId())
	}
	return attrs
}

// observe logs an RPC and counts it in the metrics.
func (s *Server) observe(ctx context.Context, fullMethod string, start time.Time, err error, attrs ...any) {
	if m := s.deps.Metrics; m != nil {
		method := path.Base(fullMethod)
		m.RPCRequests.WithLabelValues(method, status.Code(err).String()).Inc()
		m.RPCDuration.WithLabelValues(method).Observe(time.Since(start).Seconds())
	}
	level := slog.LevelDebug
	if err != nil {
		level = slog.LevelWarn
	}
	s.log.Log(ctx, level, "rpc", append([]any{"method", fullMethod, "took", time.Since(start), "err", err}, attrs...)...)
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
