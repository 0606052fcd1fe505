package server

import (
	"context"
	"errors"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/container"
)

// GetContainerEvents streams container lifecycle events (the kubelet's
// evented PLEG) until the client goes away. Each event carries the pod's
// status and its containers' statuses as of the event. A client that
// falls DefaultEventBuffer events behind is cut off with ResourceExhausted
// rather than slowing the runtime down; the kubelet then relists and
// subscribes again.
func (s *Server) GetContainerEvents(req *runtimeapi.GetEventsRequest, stream runtimeapi.RuntimeService_GetContainerEventsServer) error {
	if s.deps.Containers == nil {
		return status.Error(codes.Unimplemented, "containers are not available on this floe")
	}
	ctx := stream.Context()
	sub := s.deps.Containers.SubscribeEvents(0)
	defer sub.Close()
	for {
		// Buffered events first: a subscription that ended still
		// delivers what it had, then says why it ended.
		select {
		case ev := <-sub.C:
			if err := stream.Send(s.containerEvent(ctx, ev)); err != nil {
				return err
			}
			continue
		default:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.quit:
			return status.Error(codes.Unavailable, "floe is shutting down")
		case ev := <-sub.C:
			if err := stream.Send(s.containerEvent(ctx, ev)); err != nil {
				return err
			}
		case <-sub.Done():
			if len(sub.C) > 0 {
				continue
			}
			err := sub.Err()
			if errors.Is(err, container.ErrSlowSubscriber) {
				s.log.Warn("container event client fell behind; closing its stream", "err", err)
				return status.Error(codes.ResourceExhausted, err.Error())
			}
			if err != nil {
				return status.Error(codes.Unavailable, err.Error())
			}
			return nil
		}
	}
}

func (s *Server) containerEvent(ctx context.Context, ev container.Event) *runtimeapi.ContainerEventResponse {
	c := ev.Container
	resp := &runtimeapi.ContainerEventResponse{
		ContainerId:        c.ID,
		ContainerEventType: criEventType(ev.Type),
		CreatedAt:          ev.Time.UnixNano(),
	}
	if ps, err := s.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: c.SandboxID}); err == nil {
		resp.PodSandboxStatus = ps.Status
	}
	// The pod's containers as they are now, with the event's container
	// as it was at the event (a deleted one is no longer listed).
	resp.ContainersStatuses = append(resp.ContainersStatuses, criContainerStatus(c))
	for _, other := range s.deps.Containers.List(container.Filter{SandboxID: c.SandboxID}) {
		if other.ID != c.ID && other.SandboxID == c.SandboxID {
			resp.ContainersStatuses = append(resp.ContainersStatuses, criContainerStatus(other))
		}
	}
	return resp
}

func criEventType(t container.EventType) runtimeapi.ContainerEventType {
	switch t {
	case container.EventStarted:
		return runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT
	case container.EventStopped:
		return runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT
	case container.EventDeleted:
		return runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT
	}
	return runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT
}

// criContainerStatus is the CRI status of a container without the parts
// that read files (resources, user), shared by ContainerStatus and events.
func criContainerStatus(c *container.Container) *runtimeapi.ContainerStatus {
	st := &runtimeapi.ContainerStatus{
		Id:          c.ID,
		Metadata:    &runtimeapi.ContainerMetadata{Name: c.Spec.Name, Attempt: c.Spec.Attempt},
		State:       criContainerState(c.State),
		CreatedAt:   c.CreatedAt,
		StartedAt:   c.StartedAt,
		FinishedAt:  c.FinishedAt,
		ExitCode:    c.ExitCode,
		Image:       criImageSpec(c),
		ImageRef:    c.ImageRef,
		ImageId:     c.ImageID,
		Reason:      c.Reason,
		Message:     c.Message,
		Labels:      c.Spec.Labels,
		Annotations: c.Spec.Annotations,
		LogPath:     c.LogPath,
		StopSignal:  criSignal(syscall.Signal(c.StopSignal)),
	}
	for _, m := range c.Spec.OCI.Mounts {
		st.Mounts = append(st.Mounts, &runtimeapi.Mount{ContainerPath: m.ContainerPath, HostPath: m.HostPath, Readonly: m.Readonly, Propagation: criPropagation(m.Propagation)})
	}
	return st
}
