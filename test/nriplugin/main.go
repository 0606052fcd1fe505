// Command nriplugin is a small NRI plugin for floe's tests: it injects an
// environment variable and a bind mount into every container and pins it
// to a cpuset. It connects to --socket as an external plugin, or, started
// by the runtime from its plugin_path, takes the same settings from its
// configuration ("env=K=V", "mount=SRC:DST", "cpuset=CPUS", one a line).
// It prints "synchronized" once the runtime has synchronised it, and
// "pod-update NAME memory=N" / "post-pod-update NAME" for pod resource
// updates, refusing those above --max-pod-memory.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

type plugin struct {
	env, mount, cpuset string
	maxPodMemory       int64
}

func (p *plugin) Configure(_ context.Context, config, runtime, version string) (stub.EventMask, error) {
	for _, line := range strings.Split(config, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "env":
			p.env = v
		case "mount":
			p.mount = v
		case "cpuset":
			p.cpuset = v
		}
	}
	return 0, nil // every event the plugin implements
}

func (p *plugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	fmt.Printf("synchronized pods=%d containers=%d\n", len(pods), len(ctrs))
	return nil, nil
}

func (p *plugin) CreateContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	adj := &api.ContainerAdjustment{}
	if k, v, ok := strings.Cut(p.env, "="); ok {
		adj.AddEnv(k, v)
	}
	if src, dst, ok := strings.Cut(p.mount, ":"); ok {
		adj.AddMount(&api.Mount{Source: src, Destination: dst, Type: "bind", Options: []string{"rbind", "ro"}})
	}
	if p.cpuset != "" {
		adj.SetLinuxCPUSetCPUs(p.cpuset)
	}
	fmt.Printf("adjusted %s/%s\n", pod.GetName(), c.GetName())
	return adj, nil, nil
}

func (p *plugin) UpdatePodSandbox(_ context.Context, pod *api.PodSandbox, _, res *api.LinuxResources) error {
	mem := res.GetMemory().GetLimit().GetValue()
	fmt.Printf("pod-update %s memory=%d\n", pod.GetName(), mem)
	if p.maxPodMemory > 0 && mem > p.maxPodMemory {
		return fmt.Errorf("pod %s: memory limit %d above %d", pod.GetName(), mem, p.maxPodMemory)
	}
	return nil
}

func (p *plugin) PostUpdatePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	fmt.Printf("post-pod-update %s\n", pod.GetName())
	return nil
}

func main() {
	p := &plugin{}
	socket := flag.String("socket", "", "runtime's NRI socket (empty: started by the runtime)")
	name := flag.String("name", "floetest", "plugin name")
	idx := flag.String("idx", "50", "plugin index")
	flag.StringVar(&p.env, "env", "", "KEY=VALUE to inject")
	flag.StringVar(&p.mount, "mount", "", "SRC:DST to bind read-only")
	flag.StringVar(&p.cpuset, "cpuset", "", "cpus to pin containers to")
	flag.Int64Var(&p.maxPodMemory, "max-pod-memory", 0, "refuse pod resource updates with a larger memory limit (0: none)")
	flag.Parse()
	opts := []stub.Option{}
	if *socket != "" {
		opts = append(opts, stub.WithSocketPath(*socket), stub.WithPluginName(*name), stub.WithPluginIdx(*idx))
	}
	s, err := stub.New(p, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := s.Run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
