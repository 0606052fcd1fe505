package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/cdi"
	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/images"
	"github.com/floe-cri/floe/internal/lsm"
	"github.com/floe-cri/floe/internal/monitor"
	"github.com/floe-cri/floe/internal/ocispec"
	"github.com/floe-cri/floe/internal/sandbox"
)

// CreateContainer creates a container in a pod sandbox.
func (s *Server) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	if s.deps.Containers == nil {
		return nil, status.Error(codes.Unimplemented, "containers are not available on this floe")
	}
	if req.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "must not be empty")
	}
	spec, err := containerSpec(req.Config)
	if err != nil {
		return nil, err
	}
	// Sysctls are set per pod; every container of the pod gets them.
	sb, err := s.deps.Sandboxes.Get(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	podCfg := &runtimeapi.PodSandboxConfig{}
	if err := proto.Unmarshal(sb.Spec.Raw, podCfg); err != nil {
		return nil, fmt.Errorf("decode sandbox config of %s: %w", sb.ID, err)
	}
	spec.OCI.Sysctls = podCfg.GetLinux().GetSysctls()
	if archive, ok := restoreRequested(req.Config); ok {
		return s.createRestored(ctx, sb, archive, req.Config)
	}
	// A pod made before its handler failed a probe (a SIGHUP re-probe)
	// gets no new containers from it.
	if err := s.deps.Probes.Await(ctx, sb.Spec.RuntimeHandler); err != nil {
		return nil, err
	}
	if err := containerUserns(req.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions(), sb.Spec.UserNS); err != nil {
		return nil, err
	}
	if err := mountUserns(req.Config.GetMounts(), sb.Spec.UserNS); err != nil {
		return nil, err
	}
	procMount(req.Config.GetLinux().GetSecurityContext(), sb.Spec.UserNS != nil, &spec.OCI)
	devs, err := s.annotationDevices(sb)
	if err != nil {
		return nil, err
	}
	spec.OCI.Devices = append(spec.OCI.Devices, devs...)
	if err := s.checkHandlerSupports(sb.Spec.RuntimeHandler, &spec); err != nil {
		return nil, err
	}
	// Last before Create: an SELinux label picked here holds an MCS level
	// until the container is removed or its creation fails.
	sc, podSC := req.Config.GetLinux().GetSecurityContext(), podCfg.GetLinux().GetSecurityContext()
	if spec.OCI.LSM, err = containerLSM(sc, podSC, s.deps.LSM, s.deps.Config.AppArmor.DefaultProfile); err != nil {
		return nil, err
	}
	if why := selinuxNotApplied(sc, podSC, s.deps.LSM); why != "" {
		s.log.Info(why, "pod", sb.ID, "container", req.Config.GetMetadata().GetName())
	}
	id, err := s.deps.Containers.Create(ctx, sb.ID, spec)
	if err != nil {
		// The MCS level picked for it is free again.
		lsm.ReleaseLabel(spec.OCI.LSM.SELinuxLabel)
		return nil, err
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

// checkRecursiveReadOnly refuses the combinations the kubelet documents as
// invalid for a recursive read-only mount: it must be read-only, and
// propagation into it would let new writable submounts appear, so it must
// be private.
func checkRecursiveReadOnly(field string, m *runtimeapi.Mount) error {
	if !m.RecursiveReadOnly {
		return nil
	}
	if !m.Readonly {
		return invalid(field+".recursive_read_only", "needs readonly to be true as well")
	}
	if m.Propagation != runtimeapi.MountPropagation_PROPAGATION_PRIVATE {
		return invalid(field+".recursive_read_only", "needs propagation PROPAGATION_PRIVATE, not %s", m.Propagation)
	}
	return nil
}

// checkHandlerSupports refuses container features the pod's runtime
// handler cannot provide, naming the handler, before anything is made.
func (s *Server) checkHandlerSupports(handler string, spec *container.Spec) error {
	f, known := s.deps.HandlerFeatures[handler]
	for i, m := range spec.OCI.Mounts {
		if m.RecursiveReadOnly && (!known || !f.RecursiveReadOnlyMounts) {
			return invalid(fmt.Sprintf("config.mounts[%d].recursive_read_only", i), "runtime handler %q does not support recursive read-only mounts (its features document lists no \"rro\" mount option)", handler)
		}
	}
	return nil
}

// containerSpec validates the CRI config and translates it.
func containerSpec(cfg *runtimeapi.ContainerConfig) (container.Spec, error) {
	var spec container.Spec
	if cfg == nil {
		return spec, invalid("config", "is required")
	}
	if cfg.Metadata == nil || cfg.Metadata.Name == "" {
		return spec, invalid("config.metadata.name", "must not be empty")
	}
	// The name goes into the storage container's name, logs and the
	// reservation key, like the pod's metadata.
	if err := checkMetadataValue("config.metadata.name", cfg.Metadata.Name); err != nil {
		return spec, err
	}
	if cfg.Image == nil || cfg.Image.Image == "" {
		return spec, invalid("config.image.image", "must not be empty")
	}
	var cdiNames []string
	for _, d := range cfg.CDIDevices {
		cdiNames = append(cdiNames, d.GetName())
	}
	cdiDevices, err := cdi.Requested("config.CDI_devices", cdiNames, cfg.Annotations)
	if err != nil {
		return spec, err
	}
	stopSignal, ok := linuxSignal(cfg.StopSignal)
	if !ok {
		return spec, invalid("config.stop_signal", "%d is not a known signal", cfg.StopSignal)
	}
	if cfg.LogPath != "" && !filepath.IsLocal(cfg.LogPath) {
		return spec, invalid("config.log_path", "%q must be a relative path inside the pod's log_directory", cfg.LogPath)
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(cfg)
	if err != nil {
		return spec, fmt.Errorf("encode container config: %w", err)
	}
	spec = container.Spec{
		Name: cfg.Metadata.Name, Attempt: cfg.Metadata.Attempt,
		Labels: cfg.Labels, Annotations: cfg.Annotations,
		Image: cfg.Image.Image, UserImage: cfg.Image.UserSpecifiedImage,
		ImageAnnotations: cfg.Image.Annotations, ImageRuntimeHandler: cfg.Image.RuntimeHandler,
		LogPath: cfg.LogPath, Raw: raw,
		PIDMode: string(sandbox.ModeContainer), CDIDevices: cdiDevices,
	}
	if stopSignal != 0 {
		spec.StopSignal = strconv.Itoa(int(stopSignal))
	}
	oc := ocispec.Container{
		Command: cfg.Command, Args: cfg.Args, WorkingDir: cfg.WorkingDir,
		TTY: cfg.Tty, Stdin: cfg.Stdin, StdinOnce: cfg.StdinOnce, Annotations: cfg.Annotations,
	}
	if oc.Env, err = containerEnv(cfg.Envs); err != nil {
		return spec, err
	}
	if oc.Mounts, err = containerMounts(cfg.Mounts); err != nil {
		return spec, err
	}
	if oc.Devices, err = containerDevices(cfg.Devices); err != nil {
		return spec, err
	}
	if l := cfg.Linux; l != nil {
		if r := l.Resources; r != nil {
			oc.Resources = resources(r)
			oc.OOMScoreAdj = int(r.OomScoreAdj)
			// Values runc or the kernel would refuse, only once the
			// container's cgroup exists; what the host can hold is
			// decided by the container core before it makes anything.
			if err := oc.Resources.Validate(); err != nil {
				return spec, fmt.Errorf("config.%w", err)
			}
		}
		if sc := l.SecurityContext; sc != nil {
			if err := securityContext(sc, &oc, &spec); err != nil {
				return spec, err
			}
		}
	}
	spec.OCI = oc
	return spec, nil
}

// containerEnv checks the container's environment and returns it as
// "KEY=value" strings.
func containerEnv(envs []*runtimeapi.KeyValue) ([]string, error) {
	var env []string
	for i, kv := range envs {
		if kv == nil || kv.Key == "" {
			return nil, invalid(fmt.Sprintf("config.envs[%d].key", i), "must not be empty")
		}
		// execve(2) takes NUL-terminated "KEY=value" strings: runc
		// refuses a NUL, and a '=' in the key would move the split.
		if strings.ContainsAny(kv.Key, "=\x00") {
			return nil, invalid(fmt.Sprintf("config.envs[%d].key", i), "%q holds '=' or NUL", kv.Key)
		}
		if bytes.IndexByte(kv.Value, 0) >= 0 {
			return nil, invalid(fmt.Sprintf("config.envs[%d].value", i), "holds a NUL byte")
		}
		env = append(env, kv.Key+"="+string(kv.Value))
	}
	return env, nil
}

// containerMounts checks and translates the container's mounts, in order.
func containerMounts(mounts []*runtimeapi.Mount) ([]ocispec.Mount, error) {
	var out []ocispec.Mount
	for i, m := range mounts {
		mount, err := containerMount(fmt.Sprintf("config.mounts[%d]", i), m)
		if err != nil {
			return nil, err
		}
		out = append(out, mount)
	}
	return out, nil
}

// containerMount checks and translates one mount: an image volume, or a
// bind of a host path.
func containerMount(field string, m *runtimeapi.Mount) (ocispec.Mount, error) {
	if m == nil || m.ContainerPath == "" {
		return ocispec.Mount{}, invalid(field+".container_path", "is required")
	}
	if err := checkContainerPath(field, m); err != nil {
		return ocispec.Mount{}, err
	}
	if m.GetImage().GetImage() != "" {
		return imageVolume(field, m)
	}
	if m.ImageSubPath != "" {
		return ocispec.Mount{}, invalid(field+".image_sub_path", "is only allowed with image (an image volume)")
	}
	if m.HostPath == "" {
		return ocispec.Mount{}, invalid(field+".host_path", "is required unless image is set")
	}
	// uidMappings/gidMappings are checked against the pod's user
	// namespace in CreateContainer (mountUserns).
	mount := ocispec.Mount{ContainerPath: m.ContainerPath, HostPath: m.HostPath, Readonly: m.Readonly, RecursiveReadOnly: m.RecursiveReadOnly, Options: m.MountOptions, SELinuxRelabel: m.SelinuxRelabel}
	switch m.Propagation {
	case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		mount.Propagation = ocispec.PropagationHostToCt
	case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		mount.Propagation = ocispec.PropagationBidir
	}
	if err := checkRecursiveReadOnly(field, m); err != nil {
		return ocispec.Mount{}, err
	}
	return mount, nil
}

// containerDevices checks and translates the container's devices (nil
// entries are skipped).
func containerDevices(devices []*runtimeapi.Device) ([]ocispec.Device, error) {
	var out []ocispec.Device
	for i, d := range devices {
		if d == nil {
			continue
		}
		// What the spec builder would refuse only after the rootfs is
		// made; whether host_path is a device node is checked there.
		field := fmt.Sprintf("config.devices[%d]", i)
		if strings.Trim(d.Permissions, "rwm") != "" {
			return nil, invalid(field+".permissions", "%q: only r, w and m are allowed", d.Permissions)
		}
		if !filepath.IsAbs(d.HostPath) || strings.IndexByte(d.HostPath, 0) >= 0 {
			return nil, invalid(field+".host_path", "%q is not an absolute path", d.HostPath)
		}
		if d.ContainerPath != "" && (!filepath.IsAbs(d.ContainerPath) || filepath.Clean(d.ContainerPath) == "/" || strings.IndexByte(d.ContainerPath, 0) >= 0) {
			return nil, invalid(field+".container_path", "%q is not an absolute path below /", d.ContainerPath)
		}
		out = append(out, ocispec.Device{ContainerPath: d.ContainerPath, HostPath: d.HostPath, Permissions: d.Permissions})
	}
	return out, nil
}

// procMountsAllowed are the files under /proc runc 1.1 lets a bind mount
// cover (the ones lxcfs emulates); runc refuses any other destination
// inside /proc, but only in the container's init, after everything else
// is made.
var procMountsAllowed = []string{
	"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
	"/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
}

// checkContainerPath refuses destinations runc refuses, or that would
// replace the container's root: it must be absolute, must not be "/",
// and inside /proc only runc's list is allowed (and /proc itself only
// from another procfs, which runc checks by the source's filesystem).
// Destinations are compared cleaned, so "/x/../proc" is /proc. A symlink
// in the image can still lead elsewhere; runc resolves those inside the
// rootfs and refuses what it must.
func checkContainerPath(field string, m *runtimeapi.Mount) error {
	p := m.ContainerPath
	if strings.IndexByte(p, 0) >= 0 || strings.IndexByte(m.HostPath, 0) >= 0 {
		return invalid(field, "container_path or host_path holds a NUL byte")
	}
	if !filepath.IsAbs(p) {
		return invalid(field+".container_path", "%q is not an absolute path", p)
	}
	clean := filepath.Clean(p)
	if clean == "/" {
		return invalid(field+".container_path", "%q would cover the container's root filesystem", p)
	}
	if clean == "/proc" {
		var st unix.Statfs_t
		if m.HostPath != "" && unix.Statfs(m.HostPath, &st) == nil && st.Type == unix.PROC_SUPER_MAGIC {
			return nil
		}
		return invalid(field+".container_path", "%q: only a procfs host_path may be mounted onto /proc", p)
	}
	if strings.HasPrefix(clean, "/proc/") && !slices.Contains(procMountsAllowed, clean) {
		return invalid(field+".container_path", "%q is inside /proc, where runc only lets these be mounted over: %s", p, strings.Join(procMountsAllowed, ", "))
	}
	return nil
}

// imageVolume translates a mount of an image (KEP-4639). The kubelet
// always sends these read-only (the image volume plugin is read-only), so
// a writable one is refused rather than silently made read-only.
func imageVolume(field string, m *runtimeapi.Mount) (ocispec.Mount, error) {
	img := m.Image.Image
	if m.HostPath != "" {
		return ocispec.Mount{}, invalid(field+".host_path", "must be empty for an image volume (image %q)", img)
	}
	if !m.Readonly {
		return ocispec.Mount{}, invalid(field+".readonly", "image volumes are read-only; image %q must be mounted with readonly set", img)
	}
	sub, err := images.CheckSubPath(m.ImageSubPath)
	if err != nil {
		return ocispec.Mount{}, invalid(field+".image_sub_path", "%v", err)
	}
	return ocispec.Mount{ContainerPath: m.ContainerPath, Readonly: true, Image: img, ImageSubPath: sub}, nil
}

func resources(r *runtimeapi.LinuxContainerResources) ocispec.Resources {
	out := ocispec.Resources{
		CPUShares: r.CpuShares, CPUQuota: r.CpuQuota, CPUPeriod: r.CpuPeriod,
		CpusetCpus: r.CpusetCpus, CpusetMems: r.CpusetMems,
		MemoryLimit: r.MemoryLimitInBytes, MemorySwapLimit: r.MemorySwapLimitInBytes,
		Unified: r.Unified,
	}
	for _, h := range r.HugepageLimits {
		if h != nil {
			out.Hugepages = append(out.Hugepages, ocispec.Hugepage{PageSize: h.PageSize, Limit: h.Limit})
		}
	}
	return out
}

func securityContext(sc *runtimeapi.LinuxContainerSecurityContext, oc *ocispec.Container, spec *container.Spec) error {
	oc.Privileged = sc.Privileged
	oc.ReadonlyRootfs = sc.ReadonlyRootfs
	oc.NoNewPrivs = sc.NoNewPrivs
	if c := sc.Capabilities; c != nil {
		if len(c.AddAmbientCapabilities) > 0 {
			return errdefs.FailedPrecondition("config.linux.security_context.capabilities.add_ambient_capabilities: ambient capabilities (%v) are not supported by floe", c.AddAmbientCapabilities)
		}
		oc.Capabilities = ocispec.Capabilities{Add: c.AddCapabilities, Drop: c.DropCapabilities}
	}
	if sc.RunAsUser != nil {
		v := sc.RunAsUser.Value
		oc.User.RunAsUser = &v
	}
	if sc.RunAsGroup != nil {
		// A group without a user is refused by User.Validate below.
		v := sc.RunAsGroup.Value
		oc.User.RunAsGroup = &v
	}
	oc.User.RunAsUsername = sc.RunAsUsername
	oc.User.SupplementalGroups = sc.SupplementalGroups
	switch sc.SupplementalGroupsPolicy {
	case runtimeapi.SupplementalGroupsPolicy_Merge:
		oc.User.GroupsPolicy = ocispec.GroupsMerge
	case runtimeapi.SupplementalGroupsPolicy_Strict:
		oc.User.GroupsPolicy = ocispec.GroupsStrict
	default:
		return invalid("config.linux.security_context.supplemental_groups_policy", "unknown policy %d (want Merge or Strict)", sc.SupplementalGroupsPolicy)
	}
	// Decided here, before the container core makes anything; the image
	// part (names in /etc/passwd) can only be checked once its rootfs is
	// there.
	if err := oc.User.Validate(); err != nil {
		return fmt.Errorf("config.linux.%w", err)
	}
	// Empty lists keep the defaults, except in a pod with a user
	// namespace (procMount: Unmasked; see procMount).
	if len(sc.MaskedPaths) > 0 {
		oc.MaskedPaths = sc.MaskedPaths
	}
	if len(sc.ReadonlyPaths) > 0 {
		oc.ReadonlyPaths = sc.ReadonlyPaths
	}
	if p := sc.Seccomp; p != nil {
		switch p.ProfileType {
		case runtimeapi.SecurityProfile_RuntimeDefault:
			oc.Seccomp = ocispec.Seccomp{Kind: ocispec.SeccompRuntimeDefault}
		case runtimeapi.SecurityProfile_Localhost:
			if !filepath.IsAbs(p.LocalhostRef) {
				return invalid("config.linux.security_context.seccomp.localhost_ref", "%q is not an absolute path", p.LocalhostRef)
			}
			oc.Seccomp = ocispec.Seccomp{Kind: ocispec.SeccompLocalhost, LocalhostPath: p.LocalhostRef}
		}
	}
	if ns := sc.NamespaceOptions; ns != nil {
		spec.PIDMode = string(namespaceMode(ns.Pid))
		spec.TargetID = ns.TargetId
	}
	return nil
}

// readBundleSpec reads the bundle's config.json (for the verbose status).
func readBundleSpec(bundle string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode %s/config.json: %w", bundle, err)
	}
	return &s, nil
}

// criResources reports the container's current limits in CRI form.
func criResources(oc ocispec.Container) *runtimeapi.LinuxContainerResources {
	r := oc.Resources
	out := &runtimeapi.LinuxContainerResources{
		CpuPeriod: r.CPUPeriod, CpuQuota: r.CPUQuota, CpuShares: r.CPUShares,
		MemoryLimitInBytes: r.MemoryLimit, MemorySwapLimitInBytes: r.MemorySwapLimit,
		CpusetCpus: r.CpusetCpus, CpusetMems: r.CpusetMems, Unified: r.Unified,
		OomScoreAdj: int64(oc.OOMScoreAdj),
	}
	for _, h := range r.Hugepages {
		out.HugepageLimits = append(out.HugepageLimits, &runtimeapi.HugepageLimit{PageSize: h.PageSize, Limit: h.Limit})
	}
	return out
}

// StartContainer starts a created container.
func (s *Server) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	if err := s.needContainers(req.ContainerId); err != nil {
		return nil, err
	}
	if err := s.deps.Containers.Start(ctx, req.ContainerId); err != nil {
		return nil, err
	}
	return &runtimeapi.StartContainerResponse{}, nil
}

// StopContainer stops a container; it is idempotent.
func (s *Server) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	if err := s.needContainers(req.ContainerId); err != nil {
		return nil, err
	}
	if req.Timeout < 0 {
		return nil, invalid("timeout", "%d is negative", req.Timeout)
	}
	if err := s.deps.Containers.Stop(ctx, req.ContainerId, time.Duration(req.Timeout)*time.Second); err != nil {
		return nil, err
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

// RemoveContainer removes a container; it is idempotent.
func (s *Server) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	if err := s.needContainers(req.ContainerId); err != nil {
		return nil, err
	}
	if err := s.deps.Containers.Remove(ctx, req.ContainerId); err != nil {
		return nil, err
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (s *Server) needContainers(id string) error {
	if s.deps.Containers == nil {
		return status.Error(codes.Unimplemented, "containers are not available on this floe")
	}
	if id == "" {
		return invalid("container_id", "must not be empty")
	}
	return nil
}

// ContainerStatus reports one container; verbose adds pid, bundle and spec.
func (s *Server) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	if err := s.needContainers(req.ContainerId); err != nil {
		return nil, err
	}
	c, err := s.deps.Containers.Get(req.ContainerId)
	if err != nil {
		return nil, err
	}
	st := criContainerStatus(c)
	// The kubelet compares these with the pod spec (in-place resize) and
	// reports the user the process really runs as.
	st.Resources = &runtimeapi.ContainerResources{Linux: criResources(c.Spec.OCI)}
	if u := c.User; u != nil {
		groups := []int64{}
		for _, g := range u.AdditionalGids {
			groups = append(groups, int64(g))
		}
		st.User = &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{Uid: int64(u.UID), Gid: int64(u.GID), SupplementalGroups: groups}}
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: st}
	if req.Verbose {
		info := map[string]any{
			"id": c.ID, "sandboxId": c.SandboxID, "bundle": c.Bundle, "rootfs": c.Rootfs,
			"runtimeHandler": c.Handler, "state": c.State,
		}
		if c.Monitor != nil {
			info["pid"] = c.Monitor.Pid
			info["conmonPid"] = c.Monitor.ConmonPid
		}
		// The whole spec only for the verbose view, read when asked.
		if spec, err := readBundleSpec(c.Bundle); err == nil {
			info["runtimeSpec"] = spec
		}
		b, err := json.Marshal(info)
		if err != nil {
			return nil, fmt.Errorf("encode container info: %w", err)
		}
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

// ListContainers lists containers from memory.
func (s *Server) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	return &runtimeapi.ListContainersResponse{Containers: s.containers(req.GetFilter())}, nil
}

// StreamContainers is ListContainers in chunks.
func (s *Server) StreamContainers(req *runtimeapi.StreamContainersRequest, stream runtimeapi.RuntimeService_StreamContainersServer) error {
	return toStatus(sendInChunks(s.containers(req.GetFilter()), func(items []*runtimeapi.Container) error {
		return stream.Send(&runtimeapi.StreamContainersResponse{Containers: items})
	}))
}

func (s *Server) containers(rf *runtimeapi.ContainerFilter) []*runtimeapi.Container {
	if s.deps.Containers == nil {
		return nil
	}
	var f container.Filter
	if rf != nil {
		f.IDPrefix, f.SandboxID, f.Labels = rf.Id, rf.PodSandboxId, rf.LabelSelector
		if rf.State != nil {
			f.State = domainContainerState(rf.State.State)
		}
	}
	// The kubelet lists every container every second or so: the records
	// are read in place, not copied, and their messages are built once
	// per version of each record (see listCache).
	cs := s.deps.Containers.View(f)
	if len(cs) == 0 {
		return nil
	}
	complete := f.IDPrefix == "" && f.SandboxID == "" && f.State == "" && len(f.Labels) == 0
	return s.ctrList.messages(cs, func(c *container.Container) string { return c.ID }, criContainers, complete)
}

// criContainers builds the list messages of cs, allocated in three blocks
// rather than three allocations each.
func criContainers(cs []*container.Container) []*runtimeapi.Container {
	out := make([]*runtimeapi.Container, len(cs))
	items := make([]runtimeapi.Container, len(cs))
	metas := make([]runtimeapi.ContainerMetadata, len(cs))
	imgs := make([]runtimeapi.ImageSpec, len(cs))
	for i, c := range cs {
		metas[i].Name, metas[i].Attempt = c.Spec.Name, c.Spec.Attempt
		imgs[i].Image, imgs[i].UserSpecifiedImage = c.ReportedImage(), c.Spec.UserImage
		imgs[i].Annotations, imgs[i].RuntimeHandler = c.Spec.ImageAnnotations, c.Spec.ImageRuntimeHandler
		it := &items[i]
		it.Id, it.PodSandboxId, it.Metadata, it.Image = c.ID, c.SandboxID, &metas[i], &imgs[i]
		it.ImageRef, it.ImageId, it.State, it.CreatedAt = c.ImageRef, c.ImageID, criContainerState(c.State), c.CreatedAt
		it.Labels, it.Annotations = c.Spec.Labels, c.Spec.Annotations
		out[i] = it
	}
	return out
}

// UpdateContainerResources applies new limits to a running container.
func (s *Server) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	if err := s.needContainers(req.ContainerId); err != nil {
		return nil, err
	}
	if req.Linux == nil {
		return nil, invalid("linux", "is required on Linux")
	}
	if err := s.deps.Containers.UpdateResources(ctx, req.ContainerId, resources(req.Linux)); err != nil {
		return nil, err
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}

// ReopenContainerLog makes conmon reopen the log after the kubelet rotated it.
func (s *Server) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	if err := s.needContainers(req.ContainerId); err != nil {
		return nil, err
	}
	if err := s.deps.Containers.ReopenLog(ctx, req.ContainerId); err != nil {
		return nil, err
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}

// ExecSync runs a command in a container and returns its output.
func (s *Server) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	if err := s.needContainers(req.ContainerId); err != nil {
		return nil, err
	}
	if req.Timeout < 0 {
		return nil, invalid("timeout", "%d is negative", req.Timeout)
	}
	res, err := s.deps.Containers.ExecSync(ctx, req.ContainerId, req.Cmd, time.Duration(req.Timeout)*time.Second)
	if errors.Is(err, monitor.ErrExecTimeout) {
		return nil, status.Errorf(codes.DeadlineExceeded, "ExecSync %v in container %s: command timed out after %ds", req.Cmd, req.ContainerId, req.Timeout)
	}
	if errors.Is(err, monitor.ErrExecOutputTooLarge) {
		return nil, status.Errorf(codes.ResourceExhausted, "ExecSync %v in container %s: output exceeds %d bytes, the most floe returns from one ExecSync", req.Cmd, req.ContainerId, monitor.ExecOutputMax)
	}
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ExecSyncResponse{Stdout: res.Stdout, Stderr: res.Stderr, ExitCode: int32(res.ExitCode)}, nil
}

func criContainerState(st container.State) runtimeapi.ContainerState {
	switch st {
	case container.StateCreated:
		return runtimeapi.ContainerState_CONTAINER_CREATED
	case container.StateRunning:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case container.StateExited:
		return runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

func domainContainerState(st runtimeapi.ContainerState) container.State {
	switch st {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return container.StateCreated
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return container.StateRunning
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return container.StateExited
	}
	return "unknown"
}

func criPropagation(p ocispec.Propagation) runtimeapi.MountPropagation {
	switch p {
	case ocispec.PropagationHostToCt:
		return runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
	case ocispec.PropagationBidir:
		return runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
	}
	return runtimeapi.MountPropagation_PROPAGATION_PRIVATE
}

// criImageSpec reports the container's image as the user named it (the
// kubelet shows ContainerStatus.image.image as the pod's image and compares
// it with the pod spec), keeping the request's user_specified_image,
// annotations and runtime handler.
func criImageSpec(c *container.Container) *runtimeapi.ImageSpec {
	return &runtimeapi.ImageSpec{
		Image: c.ReportedImage(), UserSpecifiedImage: c.Spec.UserImage,
		Annotations: c.Spec.ImageAnnotations, RuntimeHandler: c.Spec.ImageRuntimeHandler,
	}
}
