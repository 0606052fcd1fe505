// Package tracing exports OpenTelemetry traces of floe's CRI calls over
// OTLP/gRPC, as configured by the [tracing] table. The gRPC server makes a
// span of every call, a child of the kubelet's when its W3C traceparent
// comes along; the cores add child spans for the slow steps they take
// (runtime create/start/stop/delete, CNI ADD/DEL, image pulls) through
// Start, which is a no-op while tracing is off: then no exporter exists,
// no goroutine runs and the global tracer provider stays the no-op one.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/version"
)

// instrumentation names floe's own spans' tracer.
const instrumentation = "github.com/floe-cri/floe"

// Attribute keys of the ids spans carry (the CRI request fields).
const (
	AttrPodID        = attribute.Key("cri.pod_sandbox_id")
	AttrContainerID  = attribute.Key("cri.container_id")
	AttrPodName      = attribute.Key("k8s.pod.name")
	AttrPodNamespace = attribute.Key("k8s.namespace.name")
	AttrPodUID       = attribute.Key("k8s.pod.uid")
	AttrImage        = attribute.Key("cri.image")
)

// Tracing is the exporter floe runs; its zero value (tracing off) does
// nothing.
type Tracing struct {
	tp *sdktrace.TracerProvider
}

// Setup starts the exporter when cfg.Enable is set and makes it the
// process's tracer provider, with the W3C TraceContext and Baggage
// propagators the kubelet's client uses. The exporter connects lazily:
// a collector that is down loses spans, never delays floe.
func Setup(ctx context.Context, cfg config.TracingConfig, log *slog.Logger) (*Tracing, error) {
	if !cfg.Enable {
		return &Tracing{}, nil
	}
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(cfg.Endpoint), otlptracegrpc.WithInsecure())
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter to %s: %w", cfg.Endpoint, err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(version.Version)))
	if err != nil {
		// Only a schema clash of the defaults; the name still goes out.
		res = resource.NewSchemaless(semconv.ServiceName(cfg.ServiceName))
	}
	ratio := float64(cfg.SamplingRatePerMillion) / 1e6
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing: exporting spans failed", "endpoint", cfg.Endpoint, "err", err)
	}))
	log.Info("tracing enabled", "endpoint", cfg.Endpoint, "samplingRatePerMillion", cfg.SamplingRatePerMillion, "serviceName", cfg.ServiceName)
	return &Tracing{tp: tp}, nil
}

// Enabled reports an exporter running.
func (t *Tracing) Enabled() bool { return t != nil && t.tp != nil }

// ServerOptions are the gRPC server options that make a span of every
// call; none while tracing is off.
func (t *Tracing) ServerOptions() []grpc.ServerOption {
	if !t.Enabled() {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(t.tp)))}
}

// Shutdown flushes the spans still queued and stops the exporter, within
// timeout: a collector that does not answer must not hold up floe's stop.
func (t *Tracing) Shutdown(timeout time.Duration) error {
	if !t.Enabled() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := t.tp.Shutdown(ctx)
	// The provider stays global until the process ends: a late span then
	// goes nowhere instead of to a closed exporter.
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("tracing: flush spans: %w", err)
	}
	return nil
}

// Start begins a child span of ctx's span, named for the step it times.
// While tracing is off (or ctx's trace is not sampled) it is a
// non-recording span costing a context lookup.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return otel.Tracer(instrumentation).Start(ctx, name, trace.WithAttributes(attrs...))
}

// End ends a span, recording err as its status.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(otelcodes.Error, err.Error())
	}
	span.End()
}
