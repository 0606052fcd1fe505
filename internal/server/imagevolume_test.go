package server

import (
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/objects"
	"github.com/floe-cri/floe/internal/ocispec"
)

func imageVolumeConfig(m *runtimeapi.Mount) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Mounts:   []*runtimeapi.Mount{m},
	}
}

func TestImageVolumeTranslation(t *testing.T) {
	spec, err := containerSpec(imageVolumeConfig(&runtimeapi.Mount{
		ContainerPath: "/mnt/v", Readonly: true, ImageSubPath: "./etc/",
		Image: &runtimeapi.ImageSpec{Image: "0123abcd", UserSpecifiedImage: "busybox:1"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := ocispec.Mount{ContainerPath: "/mnt/v", Readonly: true, Image: "0123abcd", ImageSubPath: "etc"}
	if len(spec.OCI.Mounts) != 1 || !reflect.DeepEqual(spec.OCI.Mounts[0], want) {
		t.Errorf("mounts = %+v, want %+v", spec.OCI.Mounts, want)
	}

	bad := map[string]*runtimeapi.Mount{
		"config.mounts[0].readonly":       {ContainerPath: "/v", Image: &runtimeapi.ImageSpec{Image: "i"}},
		"config.mounts[0].host_path":      {ContainerPath: "/v", Readonly: true, HostPath: "/tmp", Image: &runtimeapi.ImageSpec{Image: "i"}},
		"config.mounts[0].image_sub_path": {ContainerPath: "/v", Readonly: true, ImageSubPath: "../etc", Image: &runtimeapi.ImageSpec{Image: "i"}},
		"config.mounts[0].container_path": {Readonly: true, Image: &runtimeapi.ImageSpec{Image: "i"}},
	}
	for field, m := range bad {
		_, err := containerSpec(imageVolumeConfig(m))
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
	// A sub path belongs to an image volume; a host mount needs its path.
	if _, err := containerSpec(imageVolumeConfig(&runtimeapi.Mount{ContainerPath: "/v", HostPath: "/tmp", ImageSubPath: "x"})); !strings.Contains(err.Error(), "image_sub_path") {
		t.Errorf("sub path without image: %v", err)
	}
	if _, err := containerSpec(imageVolumeConfig(&runtimeapi.Mount{ContainerPath: "/v", Image: &runtimeapi.ImageSpec{}})); !strings.Contains(err.Error(), "host_path") {
		t.Errorf("empty image and no host path: %v", err)
	}
}

func TestImageVolumeStatusReportsTheImageID(t *testing.T) {
	c := &container.Container{
		Meta: objects.Meta{ID: "c1"},
		Spec: container.Spec{OCI: ocispec.Container{Mounts: []ocispec.Mount{
			{ContainerPath: "/data", HostPath: "/srv/data"},
			{ContainerPath: "/mnt/v", Readonly: true, Image: "busybox:1", ImageSubPath: "etc"},
		}}},
		ImageMounts: []container.ImageMount{{Image: "busybox:1", ImageID: "0123abcd", Mountpoint: "/x/merged"}},
	}
	st := criContainerStatus(c)
	if len(st.Mounts) != 2 {
		t.Fatalf("mounts = %v", st.Mounts)
	}
	m := st.Mounts[1]
	if m.GetImage().GetImage() != "busybox:1" || m.GetImage().GetImageRef() != "0123abcd" || m.ImageSubPath != "etc" || !m.Readonly || m.HostPath != "" {
		t.Errorf("image volume status = %v", m)
	}
	if st.Mounts[0].HostPath != "/srv/data" || st.Mounts[0].Image != nil {
		t.Errorf("host mount status = %v", st.Mounts[0])
	}
}
