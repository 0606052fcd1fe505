package container

import (
	"testing"

	"github.com/floe-cri/floe/internal/images"
)

func TestImageName(t *testing.T) {
	const id = "a030c66f2b5d1e0c8e8c0cbb5b9d2a3f4e5d6c7b8a9f0e1d2c3b4a5968778695"
	img := &images.Image{ID: id, RepoTags: []string{"docker.io/library/busybox:1.36"}}
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		// The kubelet: image.image is the resolved ID, the user's name
		// comes in user_specified_image.
		{Spec{Image: id, UserImage: "busybox:1.36"}, "busybox:1.36"},
		{Spec{Image: "sha256:" + id, UserImage: "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"}, "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"},
		// crictl/critest without user_specified_image: an ID gives the
		// first tag, a name stays as written.
		{Spec{Image: id}, "docker.io/library/busybox:1.36"},
		{Spec{Image: "sha256:" + id[:12]}, "docker.io/library/busybox:1.36"},
		{Spec{Image: "busybox:1.36"}, "busybox:1.36"},
	} {
		if got := imageName(tc.spec, img); got != tc.want {
			t.Errorf("imageName(%+v) = %q, want %q", tc.spec, got, tc.want)
		}
	}
	untagged := &images.Image{ID: id}
	if got := imageName(Spec{Image: id}, untagged); got != id {
		t.Errorf("untagged image by ID: %q", got)
	}
	old := &Container{Spec: Spec{Image: id}}
	if old.ReportedImage() != id {
		t.Errorf("record without ImageName: %q", old.ReportedImage())
	}
}
