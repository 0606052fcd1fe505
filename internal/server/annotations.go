package server

import (
	"fmt"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/ocispec"
	"github.com/floe-cri/floe/internal/podannotations"
	"github.com/floe-cri/floe/internal/sandbox"
)

func annotationField(name string) string { return fmt.Sprintf("config.annotations[%s]", name) }

// allowedAnnotations are the CRI-O annotations of a pod its runtime
// handler allows; the others are logged and dropped here, never applied.
func (s *Server) allowedAnnotations(handler string, annotations map[string]string, logArgs ...any) map[string]string {
	if handler == "" {
		handler = s.deps.Config.DefaultRuntime
	}
	rt := s.deps.Config.Runtimes[handler]
	kept, ignored := podannotations.Filter(annotations, rt.AllowedAnnotations)
	for _, name := range ignored {
		s.log.Warn("pod annotation not allowed for its runtime handler; ignored (see runtimes.<handler>.allowed_annotations)",
			append([]any{"annotation", name, "handler", handler}, logArgs...)...)
	}
	return kept
}

// applyPodAnnotations applies the allowed CRI-O annotations of a pod to
// its spec. Bad values are InvalidArgument naming the annotation, before
// anything is made. An automatic user namespace holds its ids until
// release is called, once the pod is recorded or failed.
func (s *Server) applyPodAnnotations(spec *sandbox.Spec) (release func(), err error) {
	release = func() {}
	ann := s.allowedAnnotations(spec.RuntimeHandler, spec.Annotations, "name", spec.Name, "namespace", spec.Namespace)
	if v, ok := ann[podannotations.ShmSize]; ok {
		if spec.ShmSize, err = podannotations.ParseShmSize(v); err != nil {
			return release, invalid(annotationField(podannotations.ShmSize), "%v", err)
		}
	}
	if v, ok := ann[podannotations.Devices]; ok {
		// Applied to each container; checked here so a bad value fails
		// the pod rather than every container.
		if _, err := podannotations.ParseDevices(v); err != nil {
			return release, invalid(annotationField(podannotations.Devices), "%v", err)
		}
	}
	v, ok := ann[podannotations.UsernsMode]
	if !ok {
		return release, nil
	}
	size, err := podannotations.ParseUsernsMode(v)
	if err != nil {
		return release, invalid(annotationField(podannotations.UsernsMode), "%v", err)
	}
	if spec.UserNS != nil {
		s.log.Info("pod has userns_options mode POD and the userns-mode annotation; the CRI mappings win", "name", spec.Name, "namespace", spec.Namespace)
		return release, nil
	}
	if s.deps.SubIDs == nil {
		return release, errdefs.FailedPrecondition("%s: this floe hands out no subordinate ids", annotationField(podannotations.UsernsMode))
	}
	m, release, err := s.deps.SubIDs.Allocate(size, s.deps.Sandboxes.UserNamespaces())
	if err != nil {
		return func() {}, errdefs.FailedPrecondition("%s: %v", annotationField(podannotations.UsernsMode), err)
	}
	spec.UserNS, spec.UserNSAuto = &m, true
	s.log.Info("user namespace ids picked for the pod", "name", spec.Name, "namespace", spec.Namespace, "uids", m.UIDs, "gids", m.GIDs)
	return release, nil
}

// annotationDevices are the host devices the pod's allowed Devices
// annotation gives each of its containers.
func (s *Server) annotationDevices(sb *sandbox.Sandbox) ([]ocispec.Device, error) {
	ann := s.allowedAnnotations(sb.Spec.RuntimeHandler, sb.Spec.Annotations, "pod", sb.ID)
	v, ok := ann[podannotations.Devices]
	if !ok {
		return nil, nil
	}
	devs, err := podannotations.ParseDevices(v)
	if err != nil {
		return nil, invalid(annotationField(podannotations.Devices), "%v", err)
	}
	out := make([]ocispec.Device, len(devs))
	for i, d := range devs {
		out[i] = ocispec.Device{HostPath: d.HostPath, ContainerPath: d.ContainerPath, Permissions: d.Permissions}
	}
	return out, nil
}
