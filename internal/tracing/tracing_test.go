package tracing

import (
	"context"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/floe-cri/floe/internal/config"
)

// Off, tracing sets nothing up: no exporter, no goroutine, the global
// provider stays the no-op one and spans record nothing.
func TestDisabledCostsNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	tr, err := Setup(context.Background(), config.TracingConfig{Endpoint: "127.0.0.1:4317", ServiceName: "floe"}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() || tr.ServerOptions() != nil {
		t.Fatal("disabled tracing has an exporter or server options")
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("disabled tracing started %d goroutines", after-before)
	}
	_, span := Start(context.Background(), "runtime.create")
	if span.IsRecording() {
		t.Error("a span records with tracing off")
	}
	End(span, nil)
	if err := tr.Shutdown(time.Second); err != nil {
		t.Error(err)
	}
}

// On, spans are recorded and sampled, and shutdown succeeds even with no
// collector listening (the exporter connects lazily; the flush gives up
// within its timeout).
func TestEnabledRecordsAndShutsDown(t *testing.T) {
	prev := otel.GetTracerProvider()
	defer otel.SetTracerProvider(prev)
	tr, err := Setup(context.Background(), config.TracingConfig{Enable: true, Endpoint: "127.0.0.1:1", SamplingRatePerMillion: 1000000, ServiceName: "floe"}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Enabled() || len(tr.ServerOptions()) != 1 {
		t.Fatal("enabled tracing has no exporter or server option")
	}
	ctx, span := Start(context.Background(), "cni.add")
	if !span.IsRecording() || !span.SpanContext().IsSampled() {
		t.Error("a span is not recorded and sampled with tracing on")
	}
	_, child := Start(ctx, "child")
	if child.SpanContext().TraceID() != span.SpanContext().TraceID() {
		t.Error("a child span is in another trace")
	}
	End(child, nil)
	End(span, context.Canceled)
	start := time.Now()
	_ = tr.Shutdown(500 * time.Millisecond)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown without a collector took %v", took)
	}
}
