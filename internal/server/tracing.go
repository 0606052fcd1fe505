package server

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/tracing"
)

// annotateSpan names on the call's span (made by the gRPC stats handler
// when tracing is on) the pod and container the call is about: the ids of
// the request, the pod's name and namespace when the request carries its
// config or the pod is known, and the ids a create returned. Nothing is
// looked up for a span that is not recorded.
func (s *Server) annotateSpan(ctx context.Context, req, resp any) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	var attrs []attribute.KeyValue
	podID := ""
	if r, ok := req.(interface{ GetPodSandboxId() string }); ok {
		podID = r.GetPodSandboxId()
	}
	if r, ok := resp.(interface{ GetPodSandboxId() string }); ok && podID == "" {
		podID = r.GetPodSandboxId()
	}
	if podID != "" {
		attrs = append(attrs, tracing.AttrPodID.String(podID))
	}
	ctrID := ""
	if r, ok := req.(interface{ GetContainerId() string }); ok {
		ctrID = r.GetContainerId()
	}
	if r, ok := resp.(interface{ GetContainerId() string }); ok && ctrID == "" {
		ctrID = r.GetContainerId()
	}
	if ctrID != "" {
		attrs = append(attrs, tracing.AttrContainerID.String(ctrID))
		// A container call names no pod: its record does.
		if podID == "" && s.deps.Containers != nil {
			if c, err := s.deps.Containers.Get(ctrID); err == nil {
				podID = c.SandboxID
				attrs = append(attrs, tracing.AttrPodID.String(podID))
			}
		}
	}
	attrs = append(attrs, s.podAttrs(req, podID)...)
	span.SetAttributes(attrs...)
}

// podAttrs are the pod's name, namespace and uid: from the config the
// request carries, else from the pod record.
func (s *Server) podAttrs(req any, podID string) []attribute.KeyValue {
	var md *runtimeapi.PodSandboxMetadata
	if r, ok := req.(interface {
		GetConfig() *runtimeapi.PodSandboxConfig
	}); ok {
		md = r.GetConfig().GetMetadata()
	}
	if r, ok := req.(interface {
		GetSandboxConfig() *runtimeapi.PodSandboxConfig
	}); ok && md == nil {
		md = r.GetSandboxConfig().GetMetadata()
	}
	if md != nil {
		return []attribute.KeyValue{tracing.AttrPodName.String(md.Name), tracing.AttrPodNamespace.String(md.Namespace), tracing.AttrPodUID.String(md.Uid)}
	}
	if podID == "" || s.deps.Sandboxes == nil {
		return nil
	}
	sb, err := s.deps.Sandboxes.Get(podID)
	if err != nil {
		return nil
	}
	return []attribute.KeyValue{tracing.AttrPodName.String(sb.Spec.Name), tracing.AttrPodNamespace.String(sb.Spec.Namespace), tracing.AttrPodUID.String(sb.Spec.UID)}
}
