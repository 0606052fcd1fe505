package server

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/errdefs"
)

func baseContainerConfig() *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
		Image:    &runtimeapi.ImageSpec{Image: "sha256:abc", UserSpecifiedImage: "busybox:1.36", RuntimeHandler: "runc", Annotations: map[string]string{"a": "b"}},
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{}},
	}
}

// Requests floe cannot honour are refused by the translation, before the
// container core is asked for anything, naming the field.
func TestContainerSpecRefusesWhatFloeCannotHonour(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*runtimeapi.ContainerConfig)
		kind  errdefs.Kind
		field string
	}{
		{"malformed CDI device", func(c *runtimeapi.ContainerConfig) { c.CDIDevices = []*runtimeapi.CDIDevice{{Name: "gpu0"}} }, errdefs.KindInvalidArgument, "config.CDI_devices[0].name"},
		{"malformed CDI annotation", func(c *runtimeapi.ContainerConfig) { c.Annotations = map[string]string{"cdi.k8s.io/vendor": "gpu0"} }, errdefs.KindInvalidArgument, "config.annotations"},
		{"ambient capabilities", func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{AddAmbientCapabilities: []string{"NET_BIND_SERVICE"}}
		}, errdefs.KindFailedPrecondition, "add_ambient_capabilities"},
		{"group without user", func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.RunAsGroup = &runtimeapi.Int64Value{Value: 1000}
		}, errdefs.KindInvalidArgument, "run_as_group"},
		{"unknown stop signal", func(c *runtimeapi.ContainerConfig) { c.StopSignal = 999 }, errdefs.KindInvalidArgument, "config.stop_signal"},
	} {
		cfg := baseContainerConfig()
		tc.edit(cfg)
		_, err := containerSpec(cfg)
		want := map[errdefs.Kind]codes.Code{errdefs.KindFailedPrecondition: codes.FailedPrecondition, errdefs.KindInvalidArgument: codes.InvalidArgument}[tc.kind]
		if status.Code(toStatus(err)) != want || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want kind %v naming %s", tc.name, err, tc.kind, tc.field)
		}
	}
}

func TestContainerSpecTranslatesImageStopSignalAndMountFields(t *testing.T) {
	cfg := baseContainerConfig()
	cfg.StopSignal = runtimeapi.Signal_SIGNAL_SIGQUIT
	cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/v", HostPath: "/tmp", Readonly: true, RecursiveReadOnly: true, MountOptions: []string{"noexec"}}}
	cfg.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}}
	spec, err := containerSpec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Image != "sha256:abc" || spec.UserImage != "busybox:1.36" || spec.ImageRuntimeHandler != "runc" || spec.ImageAnnotations["a"] != "b" {
		t.Errorf("image fields %+v", spec)
	}
	if spec.StopSignal != "3" {
		t.Errorf("stop signal %q, want 3 (SIGQUIT)", spec.StopSignal)
	}
	m := spec.OCI.Mounts[0]
	if !m.RecursiveReadOnly || len(m.Options) != 1 || m.Options[0] != "noexec" {
		t.Errorf("mount %+v", m)
	}
}
