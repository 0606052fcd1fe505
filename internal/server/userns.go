package server

import (
	"errors"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/sandbox"
	"github.com/floe-cri/floe/internal/userns"
)

const usernsField = "config.linux.security_context.namespace_options.userns_options"

// podUserns translates a pod's userns_options: nil for the host's user
// namespace (absent, or mode NODE), the mappings for mode POD. Anything
// floe cannot run is InvalidArgument naming the field, before any side
// effect.
func podUserns(u *runtimeapi.UserNamespace) (*userns.Mappings, error) {
	if u == nil {
		return nil, nil
	}
	switch u.Mode {
	case runtimeapi.NamespaceMode_NODE:
		if len(u.Uids) > 0 || len(u.Gids) > 0 {
			return nil, invalid(usernsField, "mode NODE uses the host's user namespace and takes no uids/gids mappings")
		}
		return nil, nil
	case runtimeapi.NamespaceMode_POD:
	default:
		return nil, invalid(usernsField+".mode", "%s is not supported for user namespaces; use POD (a user namespace for the pod) or NODE", u.Mode)
	}
	m := &userns.Mappings{UIDs: idMaps(u.Uids), GIDs: idMaps(u.Gids)}
	if err := m.Check(); err != nil {
		var fe *userns.FieldError
		if errors.As(err, &fe) {
			return nil, invalid(usernsField+"."+fe.Field, "%v", fe.Err)
		}
		return nil, invalid(usernsField, "%v", err)
	}
	return m, nil
}

func idMaps(in []*runtimeapi.IDMapping) []userns.IDMap {
	out := make([]userns.IDMap, 0, len(in))
	for _, m := range in {
		out = append(out, userns.IDMap{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()})
	}
	return out
}

// checkPodUserns refuses a pod user namespace together with a host
// namespace (the pod's root would own nothing it needs there: no sysfs,
// no /proc for the host's PID namespace) and on a handler where floe
// found user namespaces unusable.
func (s *Server) checkPodUserns(spec *sandbox.Spec) error {
	if spec.UserNS == nil {
		return nil
	}
	for _, ns := range []struct {
		name string
		mode sandbox.NamespaceMode
	}{{"network", spec.NetworkMode}, {"ipc", spec.IPCMode}, {"pid", spec.PIDMode}} {
		if ns.mode == sandbox.ModeNode {
			return invalid("config.linux.security_context.namespace_options."+ns.name, "NODE cannot be combined with a pod user namespace (userns_options mode POD)")
		}
	}
	handler := spec.RuntimeHandler
	if handler == "" {
		handler = s.deps.Config.DefaultRuntime
	}
	if _, ok := s.deps.Config.Runtimes[handler]; !ok {
		return nil // the sandbox core names the unknown handler
	}
	if f := s.deps.HandlerFeatures[handler]; !f.UserNamespaces {
		reason := s.deps.Userns.Reason
		if reason == "" {
			reason = "not supported on this node"
		}
		return errdefs.FailedPrecondition("%s: runtime handler %q cannot run pods in a user namespace: %s", usernsField, handler, reason)
	}
	return nil
}

// containerUserns checks a container's userns_options against its pod's:
// the kubelet copies the pod's, and a container can only join the pod's
// user namespace (its network, IPC and UTS namespaces belong to it).
func containerUserns(u *runtimeapi.UserNamespace, pod *userns.Mappings) error {
	const field = "config.linux.security_context.namespace_options.userns_options"
	if u == nil {
		return nil
	}
	switch u.Mode {
	case runtimeapi.NamespaceMode_NODE:
		if pod != nil {
			return invalid(field+".mode", "NODE, but the pod runs in a user namespace of its own (mode POD); its containers join it")
		}
		return nil
	case runtimeapi.NamespaceMode_POD:
	default:
		return invalid(field+".mode", "%s is not supported for user namespaces; use POD or NODE", u.Mode)
	}
	if pod == nil {
		return invalid(field+".mode", "POD, but the pod was created without a user namespace (mode NODE)")
	}
	if len(u.Uids) == 0 && len(u.Gids) == 0 {
		return nil
	}
	if got := (&userns.Mappings{UIDs: idMaps(u.Uids), GIDs: idMaps(u.Gids)}); !got.Equal(pod) {
		return invalid(field, "mappings %v/%v differ from the pod's %v/%v", got.UIDs, got.GIDs, pod.UIDs, pod.GIDs)
	}
	return nil
}

// mountUserns accepts the mount idmappings the kubelet sends in a pod with
// a user namespace (the pod's own, on every mount: floe idmaps every bind
// mount of such a pod to the pod's root anyway) and refuses any other:
// one mapping per mount, different from the pod's, is not something floe
// can make.
func mountUserns(mounts []*runtimeapi.Mount, pod *userns.Mappings) error {
	for i, m := range mounts {
		if len(m.GetUidMappings()) == 0 && len(m.GetGidMappings()) == 0 {
			continue
		}
		field := fmt.Sprintf("config.mounts[%d]", i)
		if pod == nil {
			return errdefs.FailedPrecondition("%s: idmapped mounts (uidMappings/gidMappings) are only supported in pods with a user namespace (userns_options mode POD), where they must be the pod's mappings", field)
		}
		got := &userns.Mappings{UIDs: idMaps(m.UidMappings), GIDs: idMaps(m.GidMappings)}
		if !got.Equal(pod) {
			return errdefs.FailedPrecondition("%s: idmapped mount with mappings %v/%v other than the pod's %v/%v is not supported by floe", field, got.UIDs, got.GIDs, pod.UIDs, pod.GIDs)
		}
	}
	return nil
}
