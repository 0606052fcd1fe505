package server

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/handlerprobe"
	"github.com/floe-cri/floe/internal/network"
)

// statusServer has runc (usable) and crun (failed its probe) configured.
func statusServer(t *testing.T, defaultHandler string) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.Runtimes["crun"] = config.Runtime{RuntimePath: "/bin/sh", MonitorPath: "/usr/bin/conmon"}
	cfg.Runtimes["runc"] = config.Runtime{RuntimePath: "/bin/sh", MonitorPath: "/usr/bin/conmon"}
	cfg.DefaultRuntime = defaultHandler
	probes := handlerprobe.NewRegistry(nil, handlerprobe.Options{}, slog.New(slog.DiscardHandler))
	probes.Record(handlerprobe.Result{Handler: "runc", Usable: true})
	probes.Record(handlerprobe.Result{Handler: "crun", Error: "crun create: exit status 1: cgroups in hybrid mode not supported"})
	dir := t.TempDir()
	return &Server{deps: Deps{Config: cfg, Network: network.New(dir, nil, dir), Probes: probes}, log: slog.New(slog.DiscardHandler)}
}

func TestStatusReportsFailedHandlerProbes(t *testing.T) {
	s := statusServer(t, "runc")
	resp, err := s.Status(context.Background(), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	conds := map[string]*runtimeapi.RuntimeCondition{}
	for _, c := range resp.Status.Conditions {
		conds[c.Type] = c
	}
	if c := conds[HandlerConditionPrefix+"crun"]; c == nil || c.Status || c.Reason != "HandlerProbeFailed" || !strings.Contains(c.Message, "hybrid mode") {
		t.Errorf("crun condition = %v", c)
	}
	if c := conds[HandlerConditionPrefix+"runc"]; c == nil || !c.Status {
		t.Errorf("runc condition = %v", c)
	}
	if c := conds[runtimeapi.RuntimeReady]; c == nil || !c.Status {
		t.Errorf("RuntimeReady = %v", c)
	}
	var names []string
	for _, h := range resp.RuntimeHandlers {
		names = append(names, h.Name)
	}
	if strings.Join(names, ",") != "runc," {
		t.Errorf("RuntimeHandlers = %q, want runc and the default (\"\") only", names)
	}
}

func TestUnusableDefaultHandlerMakesRuntimeNotReady(t *testing.T) {
	s := statusServer(t, "crun")
	resp, err := s.Status(context.Background(), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range resp.Status.Conditions {
		if c.Type == runtimeapi.RuntimeReady && (c.Status || c.Reason != "RuntimeHandlerUnusable" || !strings.Contains(c.Message, `"crun"`)) {
			t.Errorf("RuntimeReady = %v", c)
		}
	}
	for _, h := range resp.RuntimeHandlers {
		if h.Name == "" || h.Name == "crun" {
			t.Errorf("unusable default handler listed: %v", resp.RuntimeHandlers)
		}
	}
	_, err = s.RunPodSandbox(context.Background(), &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "n", Uid: "u"}}})
	if status.Code(toStatus(err)) != codes.FailedPrecondition || !strings.Contains(err.Error(), `"crun"`) || !strings.Contains(err.Error(), "hybrid mode") {
		t.Errorf("RunPodSandbox on the unusable default handler = %v", err)
	}
}
