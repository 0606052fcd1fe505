package integration

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/checkpoint"
	"github.com/floe-cri/floe/test/harness"
)

// testCRIU is the criu the checkpoint tests configure floe with:
// FLOE_TEST_CRIU, or Debian's. On a kernel newer than that criu knows
// (criu 3.17 on Linux 6.13+) `criu check` fails, and the tests then check
// the refusals instead of the round trip; a criu 4.x makes them run it.
func testCRIU() string {
	if p := os.Getenv("FLOE_TEST_CRIU"); p != "" {
		return p
	}
	return checkpoint.DefaultCRIU
}

// counterScript counts in a shell variable, so only a restore of the
// process's memory continues the count; it also changes its rootfs (a
// new file, a deleted one) for the archive's rootfs diff.
const counterScript = "echo hello > /marker; rm /etc/group; i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done"

// TestCheckpointContainerAndRestore checkpoints a running container that
// counts in memory and restores the archive as a new container of the
// pod: the count continues where the checkpoint caught it, the rootfs
// changes are there, and the restored container stops and is removed
// like any other. Where criu cannot work on this host, both operations
// must answer FailedPrecondition carrying criu's reason, decided before
// anything is touched.
func TestCheckpointContainerAndRestore(t *testing.T) {
	harness.CheckLeaks(t)
	criu := testCRIU()
	host := checkpoint.Detect(context.Background(), criu)
	t.Logf("criu on this host: %+v", host)
	env := newContainerEnvWith(t, containerEnvOptions{ConfigTOML: fmt.Sprintf("[checkpoint]\ncriu_path = %q\n", criu)})
	ctx := harness.Ctx(t)
	// As root: where floe lacks CAP_SYS_RESOURCE (this kind of host)
	// criu can only dump processes of its own uid and gid.
	counter := env.config("counter", "sh", "-c", counterScript)
	counter.Linux.SecurityContext.RunAsUser = &runtimeapi.Int64Value{Value: 0}
	id := env.run(t, counter)
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
	if !strings.Contains(env.d.Log(), "checkpoint/restore") {
		t.Errorf("startup checks do not report checkpoint/restore:\n%s", env.d.Log())
	}
	logPath := filepath.Join(env.logDir, "counter.log")
	waitLines(t, logPath, 5)

	if !host.Usable() {
		refusals(t, env, id, host, archive, logPath)
		return
	}
	// A directory that does not exist is refused before criu runs.
	_, err := env.d.Runtime.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: filepath.Join(dir, "no", "x.tar")})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "location") {
		t.Errorf("CheckpointContainer into a missing directory = %v", err)
	}

	if host.RootOnly {
		// The image's own user (1000): refused before criu runs.
		other := env.run(t, env.config("nonroot", "sleep", "1000"))
		_, err := env.d.Runtime.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: other, Location: archive})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "CAP_SYS_RESOURCE") {
			t.Errorf("CheckpointContainer of a non-root container without CAP_SYS_RESOURCE = %v", err)
		}
		if _, err := env.d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: other}); err != nil {
			t.Fatal(err)
		}
	}

	before := lastCount(t, logPath)
	t0 := time.Now()
	if _, err := env.d.Runtime.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: archive}); err != nil {
		t.Fatalf("CheckpointContainer: %v\n%s", err, tail(env.d.Log(), 3000))
	}
	checkpointTook := time.Since(t0)
	after := lastCount(t, logPath)
	st, err := os.Stat(archive)
	if err != nil {
		t.Fatal(err)
	}
	entries := archiveEntries(t, archive)
	if entries[0] != checkpoint.ConfigFile {
		t.Errorf("archive starts with %q, want %s", entries[0], checkpoint.ConfigFile)
	}
	for _, want := range []string{checkpoint.SpecFile, checkpoint.StatusFile, checkpoint.RootfsDiffFile, checkpoint.DeletedFile, "checkpoint/inventory.img"} {
		if !contains(entries, want) {
			t.Errorf("archive lacks %s: %v", want, entries)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
		t.Errorf("the checkpoint left work files behind: %v", left)
	}
	// Forensic checkpoint: the original runs on.
	if s := env.status(t, id); s.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("original after the checkpoint: %v", s.State)
	}
	waitCount(t, logPath, after+5)

	// Restore into the same pod as a new container.
	cfg := env.config("restored")
	cfg.Image = &runtimeapi.ImageSpec{Image: archive}
	t1 := time.Now()
	resp, err := env.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: env.podID, Config: cfg, SandboxConfig: env.podCfg})
	if err != nil {
		t.Fatalf("CreateContainer from %s: %v", archive, err)
	}
	createTook := time.Since(t1)
	rid := resp.ContainerId
	if rid == id {
		t.Fatal("the restore reused the checkpointed container's id")
	}
	if s := env.status(t, rid); s.State != runtimeapi.ContainerState_CONTAINER_CREATED || s.Metadata.Name != "restored" || s.Image.Image != archive {
		t.Errorf("restored container before its start: %v %v image %v", s.State, s.Metadata, s.Image)
	}
	t2 := time.Now()
	if _, err := env.d.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: rid}); err != nil {
		t.Fatalf("StartContainer of the restored container: %v\n%s", err, tail(env.d.Log(), 3000))
	}
	startTook := time.Since(t2)
	rlog := filepath.Join(env.logDir, "restored.log")
	waitLines(t, rlog, 3)
	first := firstCount(t, rlog)
	// The dump caught the count between before and after; a restart
	// would begin at 1.
	if first <= before || first > after+2 {
		t.Errorf("restored counter starts at %d; the checkpoint was taken between %d and %d", first, before, after)
	}
	if out, code := env.exec(t, rid, "cat", "/marker"); code != 0 || out != "hello" {
		t.Errorf("restored rootfs: /marker = %q (%d)", out, code)
	}
	if out, code := env.exec(t, rid, "test", "-e", "/etc/group"); code == 0 {
		t.Errorf("restored rootfs still has the deleted /etc/group (%q)", out)
	}
	t.Logf("checkpoint %v (archive %d bytes, %d entries); restore: create %v, start %v; count %d..%d at the checkpoint, restored from %d",
		checkpointTook.Round(time.Millisecond), st.Size(), len(entries), createTook.Round(time.Millisecond), startTook.Round(time.Millisecond), before, after, first)

	// The restored container is an ordinary one from here.
	if _, err := env.d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: rid, Timeout: 2}); err != nil {
		t.Fatalf("StopContainer of the restored container: %v", err)
	}
	if s := env.status(t, rid); s.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("restored container after stop: %v", s.State)
	}
	if _, err := env.d.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: rid}); err != nil {
		t.Fatalf("RemoveContainer of the restored container: %v", err)
	}

	// Something that is not a checkpoint is refused before anything is made.
	junk := filepath.Join(dir, "junk.tar")
	if err := os.WriteFile(junk, []byte("not really a checkpoint"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = env.config("junk")
	cfg.Image = &runtimeapi.ImageSpec{Image: junk}
	_, err = env.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: env.podID, Config: cfg, SandboxConfig: env.podCfg})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "checkpoint archive") {
		t.Errorf("CreateContainer from a file that is no checkpoint = %v", err)
	}
	stoppedIsRefused(t, env, id, archive)
}

// refusals is the test on a host where criu cannot work.
func refusals(t *testing.T, env *containerEnv, id string, host checkpoint.Support, archive, logPath string) {
	ctx := harness.Ctx(t)
	before := countLines(t, logPath)
	_, err := env.d.Runtime.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: archive})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), host.Problem) {
		t.Fatalf("CheckpointContainer = %v, want FailedPrecondition naming %s and carrying %q", err, id, host.Problem)
	}
	if _, err := os.Stat(archive); !os.IsNotExist(err) {
		t.Errorf("an archive was written although the checkpoint was refused: %v", err)
	}
	if st := env.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container after the refused checkpoint: %v", st.State)
	}
	waitLines(t, logPath, before+4)

	// Restore: the image is the archive's path.
	if err := os.WriteFile(archive, []byte("not really a checkpoint"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := env.config("restored")
	cfg.Image = &runtimeapi.ImageSpec{Image: archive}
	_, err = env.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: env.podID, Config: cfg, SandboxConfig: env.podCfg})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "config.image.image") || !strings.Contains(err.Error(), archive) || !strings.Contains(err.Error(), host.Problem) {
		t.Errorf("CreateContainer from a checkpoint archive = %v, want FailedPrecondition with criu's reason", err)
	}
	list, err := env.d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(list.Containers) != 1 {
		t.Errorf("containers after the refused restore: %v %v", list, err)
	}
	stoppedIsRefused(t, env, id, archive)
}

// stoppedIsRefused: a container that is not running is refused for that
// reason first.
func stoppedIsRefused(t *testing.T, env *containerEnv, id, archive string) {
	ctx := harness.Ctx(t)
	if _, err := env.d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := env.d.Runtime.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: archive})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "only a running container") {
		t.Errorf("CheckpointContainer of a stopped container = %v", err)
	}
}

func waitLines(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for countLines(t, path) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s has fewer than %d lines", path, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// counts are the numbers the counter logged, in order.
func counts(t *testing.T, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		fields := strings.Fields(line) // time stream tag text
		if len(fields) < 4 {
			continue
		}
		if n, err := strconv.Atoi(fields[3]); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func lastCount(t *testing.T, path string) int {
	c := counts(t, path)
	if len(c) == 0 {
		t.Fatalf("%s holds no count", path)
	}
	return c[len(c)-1]
}

func firstCount(t *testing.T, path string) int {
	c := counts(t, path)
	if len(c) == 0 {
		t.Fatalf("%s holds no count", path)
	}
	return c[0]
}

func waitCount(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for lastCount(t, path) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s never counted to %d (at %d)", path, n, lastCount(t, path))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func archiveEntries(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatalf("read archive %s: %v", path, err)
		}
		names = append(names, h.Name)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
