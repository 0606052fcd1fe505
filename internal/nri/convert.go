package nri

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"

	nri "github.com/containerd/nri/pkg/adaptation"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/sandbox"
)

// podSandbox is a pod as plugins see it.
func podSandbox(sb *sandbox.Sandbox) *nri.PodSandbox {
	p := &nri.PodSandbox{
		Id: sb.ID, Name: sb.Spec.Name, Uid: sb.Spec.UID, Namespace: sb.Spec.Namespace,
		Labels: maps.Clone(sb.Spec.Labels), Annotations: maps.Clone(sb.Spec.Annotations),
		RuntimeHandler: sb.Spec.RuntimeHandler, Ips: slices.Clone(sb.IPs()),
		Linux: &nri.LinuxPodSandbox{CgroupParent: sb.Spec.CgroupParent},
	}
	for t, path := range map[string]string{"network": sb.NetnsPath, "ipc": sb.IPCPath, "uts": sb.UTSPath} {
		if path != "" {
			p.Linux.Namespaces = append(p.Linux.Namespaces, &nri.LinuxNamespace{Type: t, Path: path})
		}
	}
	slices.SortFunc(p.Linux.Namespaces, func(a, b *nri.LinuxNamespace) int { return cmpString(a.Type, b.Type) })
	if sb.PodInit != nil {
		p.Pid = uint32(sb.PodInit.Pid)
		p.Linux.Namespaces = append(p.Linux.Namespaces, &nri.LinuxNamespace{Type: "pid", Path: sb.PodInit.NsPath()})
	}
	return p
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// containerState maps floe's states onto NRI's.
func containerState(st container.State) nri.ContainerState {
	switch st {
	case container.StateCreating, container.StateCreated:
		return nri.ContainerState_CONTAINER_CREATED
	case container.StateRunning:
		return nri.ContainerState_CONTAINER_RUNNING
	case container.StateExited:
		return nri.ContainerState_CONTAINER_STOPPED
	}
	return nri.ContainerState_CONTAINER_UNKNOWN
}

// readSpec is the container's bundle spec, or nil once the bundle is gone
// (a removed container is described by its record alone).
func readSpec(c *container.Container) *specs.Spec {
	data, err := os.ReadFile(filepath.Join(c.Bundle, "config.json"))
	if err != nil {
		return nil
	}
	var s specs.Spec
	if json.Unmarshal(data, &s) != nil {
		return nil
	}
	return &s
}

// containerInfo is a container as plugins see it: its record, and the
// OCI spec it runs with (s, or the bundle's when s is nil).
func containerInfo(c *container.Container, s *specs.Spec) *nri.Container {
	ct := &nri.Container{
		Id: c.ID, PodSandboxId: c.SandboxID, Name: c.Spec.Name, State: containerState(c.State),
		Labels: maps.Clone(c.Spec.Labels), Annotations: maps.Clone(c.Spec.Annotations),
		CreatedAt: c.CreatedAt, StartedAt: c.StartedAt, FinishedAt: c.FinishedAt,
		ExitCode: c.ExitCode, StatusReason: c.Reason, StatusMessage: c.Message,
	}
	for _, d := range c.Spec.CDIDevices {
		ct.CDIDevices = append(ct.CDIDevices, &nri.CDIDevice{Name: d})
	}
	if c.Monitor != nil {
		ct.Pid = uint32(c.Monitor.Pid)
	}
	if s == nil {
		s = readSpec(c)
	}
	if s == nil {
		return ct
	}
	if s.Annotations != nil {
		ct.Annotations = maps.Clone(s.Annotations)
	}
	ct.Mounts = nri.FromOCIMounts(s.Mounts)
	ct.Hooks = nri.FromOCIHooks(s.Hooks)
	if p := s.Process; p != nil {
		ct.Args = slices.Clone(p.Args)
		ct.Env = slices.Clone(p.Env)
		for _, r := range p.Rlimits {
			ct.Rlimits = append(ct.Rlimits, &nri.POSIXRlimit{Type: r.Type, Hard: r.Hard, Soft: r.Soft})
		}
		ct.User = &nri.User{Uid: p.User.UID, Gid: p.User.GID, AdditionalGids: slices.Clone(p.User.AdditionalGids)}
	}
	if l := s.Linux; l != nil {
		ct.Linux = &nri.LinuxContainer{
			Namespaces:  nri.FromOCILinuxNamespaces(l.Namespaces),
			Devices:     nri.FromOCILinuxDevices(l.Devices),
			Resources:   nri.FromOCILinuxResources(l.Resources, nil),
			CgroupsPath: l.CgroupsPath,
			Sysctl:      maps.Clone(l.Sysctl),
		}
		if s.Process != nil && s.Process.OOMScoreAdj != nil {
			ct.Linux.OomScoreAdj = nri.Int(*s.Process.OOMScoreAdj)
		}
	}
	return ct
}
