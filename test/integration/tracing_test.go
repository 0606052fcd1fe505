package integration

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/fixtures"
	"github.com/floe-cri/floe/test/harness"
)

// collector is an in-process OTLP/gRPC trace collector keeping every span
// it is sent.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu       sync.Mutex
	spans    []*tracepb.Span
	services []string
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				c.services = append(c.services, a.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (c *collector) trace(id []byte) []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range c.spans {
		if string(s.TraceId) == string(id) {
			out = append(out, s)
		}
	}
	return out
}

// startCollector serves a collector on a loopback port until the test ends.
func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, c)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return c, l.Addr().String()
}

// withParent sends the kubelet's W3C trace context: trace traceID, parent
// span spanID, sampled.
func withParent(ctx context.Context, traceID, spanID []byte) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "traceparent", fmt.Sprintf("00-%x-%x-01", traceID, spanID))
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.GetValue().GetStringValue()
		}
	}
	return ""
}

// findSpan is the span of trace named name (or ending in /name) whose
// parent is parent (any parent when nil).
func findSpan(spans []*tracepb.Span, name string, parent []byte) *tracepb.Span {
	for _, s := range spans {
		if (s.Name == name || strings.HasSuffix(s.Name, "/"+name)) && (parent == nil || string(s.ParentSpanId) == string(parent)) {
			return s
		}
	}
	return nil
}

// traceText draws a trace as an indented tree: span name, duration, the
// pod and container attributes.
func traceText(spans []*tracepb.Span) string {
	byParent := map[string][]*tracepb.Span{}
	ids := map[string]bool{}
	for _, s := range spans {
		ids[string(s.SpanId)] = true
	}
	for _, s := range spans {
		p := string(s.ParentSpanId)
		if !ids[p] {
			p = "" // the kubelet's span, not exported by floe
		}
		byParent[p] = append(byParent[p], s)
	}
	var b strings.Builder
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		kids := byParent[parent]
		slices.SortFunc(kids, func(x, y *tracepb.Span) int { return int(int64(x.StartTimeUnixNano) - int64(y.StartTimeUnixNano)) })
		for _, s := range kids {
			d := time.Duration(s.EndTimeUnixNano - s.StartTimeUnixNano)
			fmt.Fprintf(&b, "%s%s  %v  span=%s parent=%s", strings.Repeat("  ", depth), s.Name, d.Round(10*time.Microsecond), hex.EncodeToString(s.SpanId), hex.EncodeToString(s.ParentSpanId))
			for _, k := range []string{"cri.pod_sandbox_id", "cri.container_id", "k8s.pod.name", "k8s.namespace.name", "cni.network", "runtime.handler", "cri.image"} {
				if v := spanAttr(s, k); v != "" {
					if len(v) > 16 && strings.HasSuffix(k, "_id") {
						v = v[:12]
					}
					fmt.Fprintf(&b, " %s=%s", k, v)
				}
			}
			b.WriteString("\n")
			walk(string(s.SpanId), depth+1)
		}
	}
	walk("", 0)
	return b.String()
}

// waitSpans waits until the collector holds a span named name in trace id.
func waitSpans(t *testing.T, c *collector, id []byte, name string) []*tracepb.Span {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		spans := c.trace(id)
		if findSpan(spans, name, nil) != nil || time.Now().After(deadline) {
			return spans
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// With [tracing] on, every CRI call is a span exported over OTLP, a child
// of the kubelet's span (traceparent), with the pod id on it and child
// spans for CNI ADD/DEL and the runtime's create/start/stop/delete; the
// spans still queued when floe stops are flushed.
func TestTracingExportsCRICalls(t *testing.T) {
	harness.CheckLeaks(t)
	col, endpoint := startCollector(t)
	reg := fixtures.StartRegistry(t, fixtures.RegistryOptions{})
	reg.PushBusybox(t, "busybox:ct")
	d := harness.StartDaemon(t, harness.Options{RegistriesConf: reg.RegistriesConf(false),
		ConfigTOML: fmt.Sprintf("[tracing]\nenable = true\nendpoint = %q\nservice_name = \"floe-itest\"\n", endpoint)})
	traceID, _ := hex.DecodeString("4bf92f3577b34da6a3ce929d0e0e4736")
	kubeletSpan, _ := hex.DecodeString("00f067aa0ba902b7")
	ctx := withParent(harness.Ctx(t), traceID, kubeletSpan)

	image := reg.Ref("busybox:ct")
	if _, err := d.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}}); err != nil {
		t.Fatal(err)
	}
	cfg := podConfig("traced")
	resp, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	pod := resp.PodSandboxId
	ccfg := &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, Image: &runtimeapi.ImageSpec{Image: image},
		Command: []string{"sleep", "60"}, Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{}}}
	cr, err := d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: ccfg, SandboxConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		t.Fatal(err)
	}

	spans := waitSpans(t, col, traceID, "StartContainer")
	run := findSpan(spans, "RunPodSandbox", kubeletSpan)
	if run == nil {
		t.Fatalf("no RunPodSandbox span parented to the kubelet's span %x in trace %x:\n%s", kubeletSpan, traceID, traceText(spans))
	}
	if got := spanAttr(run, "cri.pod_sandbox_id"); got != pod {
		t.Errorf("RunPodSandbox span has cri.pod_sandbox_id %q, want %s", got, pod)
	}
	if spanAttr(run, "k8s.pod.name") != "traced" || spanAttr(run, "k8s.namespace.name") != "itest" {
		t.Errorf("RunPodSandbox span lacks the pod's name and namespace: %v", run.Attributes)
	}
	if findSpan(spans, "cni.add", run.SpanId) == nil {
		t.Errorf("no cni.add child of RunPodSandbox:\n%s", traceText(spans))
	}
	for rpc, step := range map[string]string{"CreateContainer": "runtime.create", "StartContainer": "runtime.start", "PullImage": "image.pull"} {
		s := findSpan(spans, rpc, kubeletSpan)
		if s == nil {
			t.Errorf("no %s span parented to the kubelet's", rpc)
			continue
		}
		if findSpan(spans, step, s.SpanId) == nil {
			t.Errorf("no %s child of %s:\n%s", step, rpc, traceText(spans))
		}
	}
	if s := findSpan(spans, "StartContainer", nil); s != nil && (spanAttr(s, "cri.container_id") != cr.ContainerId || spanAttr(s, "cri.pod_sandbox_id") != pod || spanAttr(s, "k8s.pod.name") != "traced") {
		t.Errorf("StartContainer span does not name container %s of pod %s (traced): %v", cr.ContainerId, pod, s.Attributes)
	}

	// The last calls' spans are still queued (the batcher sends every
	// 5 s): floe's stop flushes them.
	if _, err := d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	d.Stop()
	spans = col.trace(traceID)
	stop := findSpan(spans, "StopPodSandbox", kubeletSpan)
	if stop == nil || findSpan(spans, "RemovePodSandbox", kubeletSpan) == nil {
		t.Fatalf("spans of the last calls not flushed at stop:\n%s", traceText(spans))
	}
	if findSpan(spans, "cni.del", stop.SpanId) == nil || findSpan(spans, "runtime.stop", stop.SpanId) == nil {
		t.Errorf("StopPodSandbox lacks its cni.del and runtime.stop children:\n%s", traceText(spans))
	}
	col.mu.Lock()
	services := slices.Compact(slices.Sorted(slices.Values(col.services)))
	col.mu.Unlock()
	if !slices.Equal(services, []string{"floe-itest"}) {
		t.Errorf("service.name of the exported spans: %v", services)
	}
	t.Logf("trace %x (kubelet span %x):\n%s", traceID, kubeletSpan, traceText(spans))
}
