package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/checkpoint"
	"github.com/floe-cri/floe/test/harness"
)

// TestCheckpointContainerSaysWhyTheHostCannot checkpoints a running
// container that counts. On a host where criu cannot work (criu 3.17 on
// Linux 6.13+ fails `criu check` on the vDSO layout) the answer must be
// FailedPrecondition carrying criu's own reason, decided before the
// container is touched: no archive, the container keeps counting. A
// restore (CreateContainer from an archive path) is refused the same way.
func TestCheckpointContainerSaysWhyTheHostCannot(t *testing.T) {
	harness.CheckLeaks(t)
	host := checkpoint.Detect(context.Background(), checkpoint.DefaultCRIU)
	t.Logf("criu on this host: %+v", host)
	env := newContainerEnv(t, nil)
	ctx := harness.Ctx(t)
	id := env.run(t, env.config("counter", "sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done"))
	dir := t.TempDir()
	archive := filepath.Join(dir, "counter.tar")

	for _, bad := range []struct {
		req  *runtimeapi.CheckpointContainerRequest
		code codes.Code
		want string
	}{
		{&runtimeapi.CheckpointContainerRequest{Location: archive}, codes.InvalidArgument, "container_id"},
		{&runtimeapi.CheckpointContainerRequest{ContainerId: id}, codes.InvalidArgument, "location"},
		{&runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: "rel.tar"}, codes.InvalidArgument, "location"},
		{&runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: archive, Timeout: -1}, codes.InvalidArgument, "timeout"},
		{&runtimeapi.CheckpointContainerRequest{ContainerId: "nope", Location: archive}, codes.NotFound, "nope"},
	} {
		_, err := env.d.Runtime.CheckpointContainer(ctx, bad.req)
		if status.Code(err) != bad.code || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("CheckpointContainer(%v) = %v, want %s naming %q", bad.req, err, bad.code, bad.want)
		}
	}

	logPath := filepath.Join(env.logDir, "counter.log")
	before := countLines(t, logPath)
	_, err := env.d.Runtime.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: archive})
	if host.Usable() {
		// criu works: floe must not pretend it checkpointed.
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("CheckpointContainer with a working criu = %v", err)
		}
	} else {
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), host.Problem) {
			t.Fatalf("CheckpointContainer = %v, want FailedPrecondition naming %s and carrying %q", err, id, host.Problem)
		}
	}
	if _, err := os.Stat(archive); !os.IsNotExist(err) {
		t.Errorf("an archive was written although the checkpoint was refused: %v", err)
	}
	if st := env.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container after the refused checkpoint: %v", st.State)
	}
	deadline := time.Now().Add(10 * time.Second)
	for countLines(t, logPath) <= before+3 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := countLines(t, logPath); n <= before+3 {
		t.Errorf("the counter stopped counting (%d lines, %d before the checkpoint)", n, before)
	}

	// Restore: the image is the archive's path.
	if err := os.WriteFile(archive, []byte("not really a checkpoint"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := env.config("restored")
	cfg.Image = &runtimeapi.ImageSpec{Image: archive}
	_, err = env.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: env.podID, Config: cfg, SandboxConfig: env.podCfg})
	wantCode := codes.FailedPrecondition
	if host.Usable() {
		wantCode = codes.Unimplemented
	}
	if status.Code(err) != wantCode || !strings.Contains(err.Error(), "config.image.image") || !strings.Contains(err.Error(), archive) {
		t.Errorf("CreateContainer from a checkpoint archive = %v, want %s", err, wantCode)
	}
	list, err := env.d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(list.Containers) != 1 {
		t.Errorf("containers after the refused restore: %v %v", list, err)
	}

	// A container that is not running is refused for that reason first.
	if _, err := env.d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = env.d.Runtime.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: archive})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "only a running container") {
		t.Errorf("CheckpointContainer of a stopped container = %v", err)
	}
	if !strings.Contains(env.d.Log(), "checkpoint/restore") {
		t.Errorf("startup checks do not report checkpoint/restore:\n%s", env.d.Log())
	}
}
