package server

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/podannotations"
	"github.com/floe-cri/floe/internal/sandbox"
	"github.com/floe-cri/floe/internal/userns"
)

func annotationServer(t *testing.T, allowed []string) *Server {
	dir := t.TempDir()
	for _, n := range []string{"subuid", "subgid"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("containers:300000:131072\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := userns.NewAllocator(userns.SubIDUser, filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{DefaultRuntime: "runc", Runtimes: map[string]config.Runtime{"runc": {AllowedAnnotations: allowed}}}
	return &Server{deps: Deps{Config: cfg, SubIDs: sub, Sandboxes: sandbox.New(sandbox.Options{})}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestPodAnnotationsOnlyWhenAllowed(t *testing.T) {
	ann := map[string]string{podannotations.UsernsMode: "auto:size=8192", podannotations.ShmSize: "128Mi", podannotations.Devices: "/dev/fuse"}
	spec := sandbox.Spec{Name: "p", Namespace: "n", Annotations: ann}
	release, err := annotationServer(t, nil).applyPodAnnotations(&spec)
	release()
	if err != nil || spec.UserNS != nil || spec.ShmSize != 0 {
		t.Errorf("not allowed, yet applied: %+v %v", spec, err)
	}
	s := annotationServer(t, podannotations.Known)
	spec = sandbox.Spec{Name: "p", Namespace: "n", Annotations: ann}
	release, err = s.applyPodAnnotations(&spec)
	if err != nil || spec.ShmSize != 128<<20 || !spec.UserNSAuto || spec.UserNS.UIDs[0] != (userns.IDMap{ContainerID: 0, HostID: 300000, Size: 8192}) {
		t.Fatalf("allowed: %+v %+v %v", spec, spec.UserNS, err)
	}
	// While the first pod is not recorded, a second gets other ids.
	spec2 := sandbox.Spec{Name: "q", Namespace: "n", Annotations: ann}
	release2, err := s.applyPodAnnotations(&spec2)
	if err != nil || spec2.UserNS.UIDs[0].HostID != 308192 {
		t.Errorf("second pod: %+v %v", spec2.UserNS, err)
	}
	release()
	release2()
	bad := sandbox.Spec{Name: "p", Namespace: "n", Annotations: map[string]string{podannotations.UsernsMode: "keep-id"}}
	if _, err := s.applyPodAnnotations(&bad); status.Code(toStatus(err)) != codes.InvalidArgument || !strings.Contains(err.Error(), podannotations.UsernsMode) {
		t.Errorf("keep-id: %v", err)
	}
}
