package images

import "testing"

func TestRepoDigestForAndIsIDOf(t *testing.T) {
	img := &Image{
		ID: "a030c66f2b5d1e0c8e8c0cbb5b9d2a3f4e5d6c7b8a9f0e1d2c3b4a5968778695",
		RepoDigests: []string{
			"docker.io/library/busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111",
			"registry.k8s.io/e2e-test-images/busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111",
		},
	}
	if got := img.RepoDigestFor("registry.k8s.io/e2e-test-images/busybox:1.36.1-1"); got != img.RepoDigests[1] {
		t.Errorf("matching repository: %q", got)
	}
	if got := img.RepoDigestFor("busybox"); got != img.RepoDigests[0] {
		t.Errorf("short name: %q", got)
	}
	if got := img.RepoDigestFor(img.ID); got != img.RepoDigests[0] {
		t.Errorf("by ID: %q", got)
	}
	if got := (&Image{ID: img.ID}).RepoDigestFor("x"); got != img.ID {
		t.Errorf("no repo digest: %q", got)
	}
	for ref, want := range map[string]bool{img.ID: true, "sha256:" + img.ID: true, "a030c6": true, "busybox": false, "a0": false, "a030c66f:latest": false, "": false} {
		if img.IsIDOf(ref) != want {
			t.Errorf("IsIDOf(%q) = %v", ref, !want)
		}
	}
}
