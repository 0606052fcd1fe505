package harness

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// flakyRuntime is a CRI client fake holding one pod whose first
// StopPodSandbox fails.
type flakyRuntime struct {
	runtimeapi.RuntimeServiceClient
	pods     []string
	stops    int
	failStop int // how many StopPodSandbox calls fail
}

func (f *flakyRuntime) ListContainers(context.Context, *runtimeapi.ListContainersRequest, ...grpc.CallOption) (*runtimeapi.ListContainersResponse, error) {
	return &runtimeapi.ListContainersResponse{}, nil
}

func (f *flakyRuntime) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest, ...grpc.CallOption) (*runtimeapi.ListPodSandboxResponse, error) {
	resp := &runtimeapi.ListPodSandboxResponse{}
	for _, id := range f.pods {
		resp.Items = append(resp.Items, &runtimeapi.PodSandbox{Id: id})
	}
	return resp, nil
}

func (f *flakyRuntime) StopPodSandbox(context.Context, *runtimeapi.StopPodSandboxRequest, ...grpc.CallOption) (*runtimeapi.StopPodSandboxResponse, error) {
	f.stops++
	if f.stops <= f.failStop {
		return nil, status.Error(codes.Unknown, "netns busy")
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (f *flakyRuntime) RemovePodSandbox(_ context.Context, req *runtimeapi.RemovePodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.RemovePodSandboxResponse, error) {
	if f.stops > f.failStop {
		f.pods = nil
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// A failure on the first try that the second try gets past is still
// reported (the old cleanup reset its errors on every try and lost it);
// one that never goes away is persistent.
func TestCRICleanupKeepsHealedErrors(t *testing.T) {
	rep := CRICleanup(context.Background(), &flakyRuntime{pods: []string{"p1"}, failStop: 1}, 3)
	if rep.Tries != 2 || len(rep.Persistent) != 0 {
		t.Errorf("tries = %d, persistent = %v; want 2 tries, nothing persistent", rep.Tries, rep.Persistent)
	}
	if h := rep.Healed(); len(h) != 1 || !strings.HasPrefix(h[0], "try 1: stop pod p1") {
		t.Errorf("healed = %q, want the first try's stop failure", h)
	}

	rep = CRICleanup(context.Background(), &flakyRuntime{pods: []string{"p1"}, failStop: 100}, 3)
	if rep.Tries != 3 || len(rep.Errors) != 3 || len(rep.Healed()) != 2 {
		t.Errorf("stuck pod: tries = %d, errors = %q, healed = %q", rep.Tries, rep.Errors, rep.Healed())
	}
	if len(rep.Persistent) != 2 { // the last try's stop failure and the pod still listed
		t.Errorf("stuck pod: persistent = %q", rep.Persistent)
	}

	rep = CRICleanup(context.Background(), &flakyRuntime{pods: []string{"p1"}}, 3)
	if rep.Tries != 1 || len(rep.Errors) != 0 || len(rep.Persistent) != 0 {
		t.Errorf("clean: %+v", rep)
	}
}
