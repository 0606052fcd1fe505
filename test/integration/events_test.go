package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/harness"
)

func TestContainerEventsInOrderForRapidContainers(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	ctx := harness.Ctx(t)

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := e.d.Runtime.GetContainerEvents(sctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatalf("GetContainerEvents: %v", err)
	}
	// A second client that never reads: it must not hold anything up.
	stalled, err := e.d.Runtime.GetContainerEvents(sctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatalf("GetContainerEvents (stalled client): %v", err)
	}
	_ = stalled

	var mu sync.Mutex
	got := map[string][]runtimeapi.ContainerEventType{}
	var bad []string
	recvDone := make(chan error, 1)
	go func() {
		for {
			ev, err := events.Recv()
			if err != nil {
				recvDone <- err
				return
			}
			mu.Lock()
			got[ev.ContainerId] = append(got[ev.ContainerId], ev.ContainerEventType)
			if ev.PodSandboxStatus.GetId() != e.podID || len(ev.ContainersStatuses) == 0 || ev.ContainersStatuses[0].Id != ev.ContainerId {
				bad = append(bad, fmt.Sprintf("%v for %s: pod %q, %d statuses", ev.ContainerEventType, ev.ContainerId[:12], ev.PodSandboxStatus.GetId(), len(ev.ContainersStatuses)))
			} else if ev.ContainerEventType == runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT && ev.ContainersStatuses[0].State != runtimeapi.ContainerState_CONTAINER_EXITED {
				bad = append(bad, fmt.Sprintf("stopped event of %s with state %v", ev.ContainerId[:12], ev.ContainersStatuses[0].State))
			}
			mu.Unlock()
		}
	}()

	const total, workers = 100, 4
	start := time.Now()
	ids := make(chan string, total)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < total; i += workers {
				cfg := e.config(fmt.Sprintf("t%03d", i), "true")
				resp, err := e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: cfg, SandboxConfig: e.podCfg})
				if err != nil {
					t.Errorf("CreateContainer %d: %v", i, err)
					return
				}
				id := resp.ContainerId
				ids <- id
				if _, err := e.d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
					t.Errorf("StartContainer %d: %v", i, err)
					return
				}
				for {
					st, err := e.d.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
					if err != nil {
						t.Errorf("ContainerStatus %d: %v", i, err)
						return
					}
					if st.Status.State == runtimeapi.ContainerState_CONTAINER_EXITED {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				if _, err := e.d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
					t.Errorf("RemoveContainer %d: %v", i, err)
				}
			}
		}(w)
	}
	// Other RPCs stay fast while the stalled client holds its stream.
	rpcCtx, rpcCancel := context.WithTimeout(ctx, 5*time.Second)
	if _, err := e.d.Runtime.ListContainers(rpcCtx, &runtimeapi.ListContainersRequest{}); err != nil {
		t.Errorf("ListContainers during the burst: %v", err)
	}
	rpcCancel()
	wg.Wait()
	close(ids)
	burst := time.Since(start)

	want := []runtimeapi.ContainerEventType{
		runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT,
		runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT,
	}
	var all []string
	for id := range ids {
		all = append(all, id)
	}
	if len(all) != total {
		t.Fatalf("created %d containers, want %d", len(all), total)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		complete := 0
		for _, id := range all {
			if len(got[id]) >= len(want) {
				complete++
			}
		}
		mu.Unlock()
		if complete == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d containers have all their events", complete, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	for _, id := range all {
		if fmt.Sprint(got[id]) != fmt.Sprint(want) {
			t.Errorf("events of %s = %v, want %v", id[:12], got[id], want)
		}
	}
	for _, b := range bad {
		t.Error(b)
	}
	mu.Unlock()
	t.Logf("%d containers created, started, exited and removed in %v with 4 workers; %d events received in order", total, burst, total*len(want))
	// The stalled client is still connected and the daemon still
	// answers: nothing waited for it.
	if _, err := e.d.Runtime.Version(ctx, &runtimeapi.VersionRequest{}); err != nil {
		t.Errorf("Version after the burst: %v", err)
	}
	select {
	case err := <-recvDone:
		t.Errorf("event stream ended early: %v", err)
	default:
	}

	// SIGTERM with an event stream open on a connection of its own (as
	// the kubelet holds one): the stream ends with Unavailable and the
	// daemon exits without waiting out its RPC drain timeout.
	conn, err := grpc.NewClient("unix://"+e.d.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	held, err := runtimeapi.NewRuntimeServiceClient(conn).GetContainerEvents(sctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
	// Drain the pod's events, then stop.
	time.Sleep(200 * time.Millisecond)
	stopStart := time.Now()
	e.d.Stop()
	if d := time.Since(stopStart); d > 10*time.Second {
		t.Errorf("daemon took %v to stop with an event stream open", d)
	}
	if _, err := held.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("held event stream ended with %v, want Unavailable", err)
	}
}
