package server

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/floe-cri/floe/internal/metrics"
)

// A panic in a handler becomes Internal, is logged with the line
// test/harness looks for, and is counted in floe_cri_panics_total by
// method, unary and streaming alike; a handler that does not panic is
// not counted.
func TestRecoveredPanicsAreCounted(t *testing.T) {
	var logBuf bytes.Buffer
	m := metrics.New()
	s := &Server{deps: Deps{Metrics: m}, log: slog.New(slog.NewTextHandler(&logBuf, nil))}
	boom := func(ctx context.Context, req any) (any, error) { panic("boom") }
	_, err := s.unaryInterceptor(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/RunPodSandbox"}, boom)
	if status.Code(err) != codes.Internal {
		t.Errorf("unary panic: err = %v, want Internal", err)
	}
	fine := func(ctx context.Context, req any) (any, error) { return nil, nil }
	if _, err := s.unaryInterceptor(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/Version"}, fine); err != nil {
		t.Fatal(err)
	}
	streamBoom := func(srv any, ss grpc.ServerStream) error { panic("stream boom") }
	err = s.streamInterceptor(nil, fakeStream{}, &grpc.StreamServerInfo{FullMethod: "/runtime.v1.RuntimeService/GetContainerEvents"}, streamBoom)
	if status.Code(err) != codes.Internal {
		t.Errorf("stream panic: err = %v, want Internal", err)
	}
	got := panicCounts(t, m)
	for method, want := range map[string]float64{"RunPodSandbox": 1, "GetContainerEvents": 1, "Version": 0} {
		if got[method] != want {
			t.Errorf("floe_cri_panics_total{method=%q} = %v, want %v", method, got[method], want)
		}
	}
	if n := strings.Count(logBuf.String(), "panic in "); n != 2 {
		t.Errorf("%d panic log lines, want 2:\n%s", n, logBuf.String())
	}
}

type fakeStream struct{ grpc.ServerStream }

func (fakeStream) Context() context.Context { return context.Background() }

// panicCounts reads floe_cri_panics_total by method from m's registry, as
// a scrape would.
func panicCounts(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "floe_cri_panics_total" {
			continue
		}
		for _, series := range mf.GetMetric() {
			for _, l := range series.GetLabel() {
				if l.GetName() == "method" {
					out[l.GetValue()] = series.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}
