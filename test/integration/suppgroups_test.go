package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/fixtures"
	"github.com/floe-cri/floe/test/harness"
)

// predefinedGroupImage is busybox whose /etc/group makes floe (uid 1000) a
// member of group-defined-in-image (50000), like critest's
// test-image-predefined-group.
func predefinedGroupImage(t *testing.T) *fixtures.Image {
	img := fixtures.Busybox(t)
	for i, f := range img.Layers[0] {
		if f.Path == "etc/group" {
			img.Layers[0][i].Data = append(slices.Clone(f.Data), []byte("group-defined-in-image:x:50000:floe\n")...)
		}
	}
	return img
}

// procIdentity reads uid, gid and the supplementary groups of a process
// from the host's /proc (the kernel's view, whatever runc was told).
func procIdentity(t *testing.T, pid int) (uid, gid int64, groups []int64) {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		key, val, _ := strings.Cut(line, ":")
		fields := strings.Fields(val)
		switch key {
		case "Uid":
			uid, _ = strconv.ParseInt(fields[0], 10, 64) // real uid
		case "Gid":
			gid, _ = strconv.ParseInt(fields[0], 10, 64)
		case "Groups":
			for _, f := range fields {
				g, _ := strconv.ParseInt(f, 10, 64)
				groups = append(groups, g)
			}
		}
	}
	slices.Sort(groups)
	return uid, gid, groups
}

func containerPid(t *testing.T, e *containerEnv, id string) int {
	t.Helper()
	resp, err := e.d.Runtime.ContainerStatus(harness.Ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.Pid == 0 {
		t.Fatalf("verbose info %s: %v", resp.Info["info"], err)
	}
	return info.Pid
}

// sortedFields turns "1000 50000 1234" into "1000 1234 50000".
func sortedFields(s string) string {
	f := strings.Fields(s)
	slices.SortFunc(f, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	return strings.Join(slices.Compact(f), " ")
}

// TestSupplementalGroupsPolicy covers KEP-3619 as critest and the kubelet
// see it: the feature in Status, Merge and Strict on an image whose
// /etc/group lists the user, ContainerStatus.user matching what the kernel
// gave the container's first process (running and after exit), and
// RunAsGroup without a user refused before anything is made.
func TestSupplementalGroupsPolicy(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnvWith(t, containerEnvOptions{Images: map[string]*fixtures.Image{"busybox:pgroup": predefinedGroupImage(t)}})
	ctx := harness.Ctx(t)

	st, err := e.d.Runtime.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil || !st.GetFeatures().GetSupplementalGroupsPolicy() {
		t.Errorf("Status features = %v, %v; want supplemental_groups_policy", st.GetFeatures(), err)
	}

	merge, strict := runtimeapi.SupplementalGroupsPolicy_Merge, runtimeapi.SupplementalGroupsPolicy_Strict
	cases := []struct {
		name     string
		set      func(*runtimeapi.LinuxContainerSecurityContext)
		uid, gid int64
		groups   []int64 // sorted, as `id -G` lists them after the gid
	}{
		// critest's two specs.
		{"merge", func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.RunAsUser, s.SupplementalGroups, s.SupplementalGroupsPolicy = i64(1000), []int64{1234}, merge
		}, 1000, 1000, []int64{1000, 1234, 50000}},
		{"strict", func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.RunAsUser, s.SupplementalGroups, s.SupplementalGroupsPolicy = i64(1000), []int64{1234}, strict
		}, 1000, 1000, []int64{1000, 1234}},
		// A primary group from run_as_group replaces the passwd one; Merge
		// still adds the memberships of the user's name.
		{"merge-username-group", func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.RunAsUsername, s.RunAsGroup, s.SupplementalGroups = "floe", i64(3000), []int64{4000}
		}, 1000, 3000, []int64{3000, 4000, 50000}},
		{"strict-username-group", func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.RunAsUsername, s.RunAsGroup, s.SupplementalGroups, s.SupplementalGroupsPolicy = "floe", i64(3000), []int64{4000}, strict
		}, 1000, 3000, []int64{3000, 4000}},
		// Strict with nothing requested: only the primary gid.
		{"strict-nothing-requested", func(s *runtimeapi.LinuxContainerSecurityContext) {
			s.RunAsUser, s.SupplementalGroupsPolicy = i64(1000), strict
		}, 1000, 1000, []int64{1000}},
	}
	for _, c := range cases {
		cfg := e.config("sg-"+c.name, "sh", "-c", "id -G; exec sleep 1000")
		cfg.Image.Image = e.images["busybox:pgroup"]
		c.set(e.sc(cfg))
		id := e.run(t, cfg)
		want := strings.Trim(fmt.Sprint(c.groups), "[]")
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(e.output(t, id), "\n"); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no output from id -G", c.name)
			}
		}
		if out := strings.TrimSpace(e.output(t, id)); sortedFields(out) != want {
			t.Errorf("%s: first process id -G = %q, want %q", c.name, out, want)
		}
		if out, code := e.exec(t, id, "id", "-G"); code != 0 || sortedFields(out) != want {
			t.Errorf("%s: exec id -G = %q (exit %d), want %q", c.name, out, code, want)
		}
		// ContainerStatus.user is the identity the kernel holds for the
		// container's first process.
		u := e.status(t, id).GetUser().GetLinux()
		got := slices.Sorted(slices.Values(u.GetSupplementalGroups()))
		if u == nil || u.Uid != c.uid || u.Gid != c.gid || !slices.Equal(got, c.groups) {
			t.Errorf("%s: status user %v, want uid %d gid %d groups %v", c.name, u, c.uid, c.gid, c.groups)
		}
		puid, pgid, pgroups := procIdentity(t, containerPid(t, e, id))
		if puid != c.uid || pgid != c.gid || !slices.Equal(pgroups, c.groups) {
			t.Errorf("%s: /proc says uid %d gid %d groups %v; status says %v", c.name, puid, pgid, pgroups, u)
		}
		// An exited container still reports who it ran as.
		if _, err := e.d.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 1}); err != nil {
			t.Fatal(err)
		}
		if u := e.waitExited(t, id).GetUser().GetLinux(); u == nil || u.Uid != c.uid || u.Gid != c.gid || len(u.SupplementalGroups) != len(c.groups) {
			t.Errorf("%s: status user after exit %v", c.name, u)
		}
	}

	// run_as_group without run_as_user/run_as_username (critest "runtime
	// should return error if RunAsGroup is set without RunAsUser"):
	// InvalidArgument naming the field, and nothing made.
	before := len(storageContainers(t, e.d))
	listed, _ := e.d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	bad := e.config("sg-group-only", "sh", "-c", "echo $(id -u):$(id -g)")
	bad.Image.Image = e.images["busybox:pgroup"]
	e.sc(bad).RunAsGroup = i64(1002)
	_, err = e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: bad, SandboxConfig: e.podCfg})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "config.linux.security_context.run_as_group") {
		t.Errorf("run_as_group alone: %v; want InvalidArgument naming config.linux.security_context.run_as_group", err)
	}
	if after, _ := e.d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); len(after.GetContainers()) != len(listed.GetContainers()) {
		t.Errorf("refused creation left a container: %d -> %d", len(listed.GetContainers()), len(after.GetContainers()))
	}
	if after := len(storageContainers(t, e.d)); after != before {
		t.Errorf("refused creation left a container layer: %d -> %d", before, after)
	}
	// An unknown policy is refused the same way.
	bad = e.config("sg-bad-policy", "true")
	e.sc(bad).RunAsUser, e.sc(bad).SupplementalGroupsPolicy = i64(1000), 7
	_, err = e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: bad, SandboxConfig: e.podCfg})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "supplemental_groups_policy") {
		t.Errorf("unknown policy: %v", err)
	}
}

// storageContainers lists the container layers in the daemon's
// containers/storage (what a half-made container would leave).
func storageContainers(t *testing.T, d *harness.Daemon) []json.RawMessage {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(d.StorageRoot, "overlay-containers", "containers.json"))
		if os.IsNotExist(err) {
			return nil
		}
		var list []json.RawMessage
		if err == nil {
			if err = json.Unmarshal(b, &list); err == nil {
				return list
			}
		}
		// The store rewrites the file in place; retry a torn read.
		if time.Now().After(deadline) {
			t.Fatalf("read containers.json: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
