package integration

import (
	"fmt"
	"sync"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/harness"
)

// Many pods created at once, as the kubelet does with
// a node's static pods: pinning a pod's namespaces ends an OS thread, and
// a plugin forked from that thread used to get its parent-death SIGKILL
// (`plugin type="loopback" failed (add): signal: killed`). Every pod must
// come up, and removing them must leave nothing.
func TestPodsCreatedDuringOtherPodsCNIAdd(t *testing.T) {
	harness.CheckLeaks(t)
	d := harness.StartDaemon(t, harness.Options{})
	before := harness.Snapshot(t, d.IPAMDir)

	const pods = 24
	var wg sync.WaitGroup
	ids := make([]string, pods)
	errs := make([]error, pods)
	for i := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig(fmt.Sprintf("conc%d", i))})
			if err == nil {
				ids[i] = resp.PodSandboxId
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("pod %d: %v", i, err)
		}
	}
	for _, id := range ids {
		if id == "" {
			continue
		}
		if _, err := d.Runtime.RemovePodSandbox(harness.Ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Errorf("remove %s: %v", id, err)
		}
	}
	before.AssertNoLeaks(t)
}
