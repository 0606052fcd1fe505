package harness

import (
	"context"
	"fmt"
	"sort"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CleanupReport is what CRICleanup met: every error of every try, and
// what was still wrong after the last one.
type CleanupReport struct {
	// Tries is how many passes ran (1 when the first was clean).
	Tries int
	// Errors are all errors of all tries, each prefixed "try N:". None
	// is dropped because a later try got past it.
	Errors []string
	// Persistent are the errors of the last try and anything still
	// listed after it.
	Persistent []string
}

// Healed are the errors of earlier tries that the last try no longer
// met: they fail a test too, but say "retried past" rather than "stuck".
func (r CleanupReport) Healed() []string {
	var out []string
	last := fmt.Sprintf("try %d:", r.Tries)
	for _, e := range r.Errors {
		if len(e) < len(last) || e[:len(last)] != last {
			out = append(out, e)
		}
	}
	return out
}

// CRICleanup removes everything the way the kubelet does after a runtime
// restart: list, stop and remove every container, then every pod, up to
// tries passes while a pass fails (the kubelet retries on its next sync).
//
// No error is treated as legitimately transient, even on the first try
// right after a restart: floe restores its pods and containers
// (sandbox.Manager.Restore, container.Manager.Restore) before it serves
// its socket, and Stop*/Remove* must succeed whatever state a crash left
// an object in, so a failure the retry got past is still a bug (a race
// with the restore, an idempotency hole). The retries only tell a stuck
// object from a flaky one; the report keeps every error.
func CRICleanup(ctx context.Context, rt runtimeapi.RuntimeServiceClient, tries int) CleanupReport {
	var rep CleanupReport
	for rep.Tries = 1; ; rep.Tries++ {
		errs := cleanupPass(ctx, rt)
		for _, e := range errs {
			rep.Errors = append(rep.Errors, fmt.Sprintf("try %d: %s", rep.Tries, e))
		}
		if len(errs) == 0 || rep.Tries == tries {
			rep.Persistent = errs
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	cs, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(cs.GetContainers()) > 0 {
		rep.Persistent = append(rep.Persistent, fmt.Sprintf("containers listed after the cleanup: %v %v", cs.GetContainers(), err))
	}
	ps, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(ps.GetItems()) > 0 {
		rep.Persistent = append(rep.Persistent, fmt.Sprintf("pods listed after the cleanup: %v %v", ps.GetItems(), err))
	}
	sort.Strings(rep.Errors)
	sort.Strings(rep.Persistent)
	return rep
}

// cleanupPass is one list, stop, remove pass; it returns its errors.
func cleanupPass(ctx context.Context, rt runtimeapi.RuntimeServiceClient) []string {
	var errs []string
	note := func(what, id string, err error) {
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s %s: %v", what, id, err))
		}
	}
	cs, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	note("list containers", "", err)
	for _, c := range cs.GetContainers() {
		_, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c.Id})
		note("stop container", c.Id, err)
		_, err = rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id})
		note("remove container", c.Id, err)
	}
	ps, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	note("list pods", "", err)
	for _, p := range ps.GetItems() {
		_, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id})
		note("stop pod", p.Id, err)
		_, err = rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id})
		note("remove pod", p.Id, err)
	}
	return errs
}
