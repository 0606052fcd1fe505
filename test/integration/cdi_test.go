package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/inspect"
	"github.com/floe-cri/floe/test/harness"
)

// cdiSpec describes a look-alike of /dev/null (char 1:3) under another
// name, with an environment variable for the device and one for every
// device of the spec.
const cdiSpec = `cdiVersion: "0.6.0"
kind: "floe.test/null"
containerEdits:
  env:
  - FLOE_CDI_VENDOR=floe
devices:
- name: one
  containerEdits:
    env:
    - FLOE_CDI_DEVICE=one
    deviceNodes:
    - path: /dev/floe-null
      type: c
      major: 1
      minor: 3
      permissions: rw
`

// A CDI device, asked for through CDIDevices or a cdi.k8s.io annotation,
// reaches the container as a usable device node and its env; an unknown
// one is refused before anything is made.
func TestCDIDevicesInjectNodeAndEnv(t *testing.T) {
	harness.CheckLeaks(t)
	specDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(specDir, "floe-test.yaml"), []byte(cdiSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newContainerEnvWith(t, containerEnvOptions{ConfigTOML: fmt.Sprintf("[cdi]\nspec_dirs = [%q]\n", specDir)})
	ctx := harness.Ctx(t)
	in, err := inspect.NewClient(e.d.InspectSocket).Info(ctx)
	if err != nil || in.CDI == nil || len(in.CDI.SpecDirs) != 1 || in.CDI.SpecDirs[0] != specDir || len(in.CDI.Devices) != 1 || in.CDI.Devices[0] != "floe.test/null=one" {
		t.Errorf("/info cdi: %+v (%v)", in.CDI, err)
	}
	script := `echo "dev=$FLOE_CDI_DEVICE vendor=$FLOE_CDI_VENDOR"; stat -c "node=%t:%T %F" /dev/floe-null; echo x > /dev/floe-null && echo written; head -c 3 /dev/floe-null | wc -c`

	byField := e.config("cdi-field", "sh", "-c", script)
	byField.CDIDevices = []*runtimeapi.CDIDevice{{Name: "floe.test/null=one"}}
	byAnnotation := e.config("cdi-annotation", "sh", "-c", script)
	byAnnotation.Annotations = map[string]string{"cdi.k8s.io/floe-test": "floe.test/null=one"}
	for _, cfg := range []*runtimeapi.ContainerConfig{byField, byAnnotation} {
		st, out := e.runToExit(t, cfg)
		for _, want := range []string{"dev=one vendor=floe", "node=1:3 character special file", "written"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output %q lacks %q", cfg.Metadata.Name, out, want)
			}
		}
		// /dev/null reads nothing: the node is the real thing, not a file.
		if !strings.HasSuffix(out, "0") || st.ExitCode != 0 {
			t.Errorf("%s: exit %d, output %q", cfg.Metadata.Name, st.ExitCode, out)
		}
	}

	list := func() int {
		resp, err := e.d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Containers)
	}
	before := list()
	unknown := e.config("cdi-unknown", "true")
	unknown.CDIDevices = []*runtimeapi.CDIDevice{{Name: "floe.test/null=one"}, {Name: "floe.test/null=two"}}
	_, err = e.d.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: e.podID, Config: unknown, SandboxConfig: e.podCfg})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "floe.test/null=two") || strings.Contains(err.Error(), "floe.test/null=one,") {
		t.Errorf("unknown CDI device: %v, want InvalidArgument naming floe.test/null=two", err)
	}
	if after := list(); after != before {
		t.Errorf("a refused container was left: %d containers, was %d", after, before)
	}
	if _, err := e.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: e.podID}); err != nil {
		t.Fatal(err)
	}
}
