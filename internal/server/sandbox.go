package server

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/network"
	"github.com/floe-cri/floe/internal/ocispec"
	"github.com/floe-cri/floe/internal/podfiles"
	"github.com/floe-cri/floe/internal/sandbox"
)

// Annotations the kubelet uses for pod traffic shaping.
const (
	ingressBandwidthAnnotation = "kubernetes.io/ingress-bandwidth"
	egressBandwidthAnnotation  = "kubernetes.io/egress-bandwidth"
)

// RunPodSandbox creates a pod sandbox.
func (s *Server) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	spec, err := sandboxSpec(req)
	if err != nil {
		return nil, err
	}
	if err := checkPodSELinux(req.Config.GetLinux().GetSecurityContext()); err != nil {
		return nil, err
	}
	handler := spec.RuntimeHandler
	if handler == "" {
		handler = s.deps.Config.DefaultRuntime
	}
	// A handler whose probe is still under way (startup, SIGHUP) is
	// waited for; other handlers' probes are not.
	if err := s.deps.Probes.Await(ctx, handler); err != nil {
		return nil, err
	}
	release, err := s.applyPodAnnotations(&spec)
	defer release()
	if err != nil {
		return nil, err
	}
	if err := s.checkPodUserns(&spec); err != nil {
		return nil, err
	}
	id, err := s.deps.Sandboxes.Run(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

// sandboxSpec validates the CRI request and translates it.
func sandboxSpec(req *runtimeapi.RunPodSandboxRequest) (sandbox.Spec, error) {
	cfg := req.GetConfig()
	if cfg == nil {
		return sandbox.Spec{}, invalid("config", "is required")
	}
	md := cfg.GetMetadata()
	if md == nil {
		return sandbox.Spec{}, invalid("config.metadata", "is required")
	}
	if md.Name == "" {
		return sandbox.Spec{}, invalid("config.metadata.name", "must not be empty")
	}
	if md.Namespace == "" {
		return sandbox.Spec{}, invalid("config.metadata.namespace", "must not be empty")
	}
	// Metadata travels into CNI_ARGS ("K=V;K=V"), netns names and log
	// lines: a ';' or '=' would let a pod name set another CNI argument
	// (an IP, say).
	// Checked in a fixed order, so a request with several bad fields always
	// gets the same error.
	for _, f := range []struct{ field, value string }{
		{"config.metadata.name", md.Name}, {"config.metadata.namespace", md.Namespace}, {"config.metadata.uid", md.Uid},
	} {
		if err := checkMetadataValue(f.field, f.value); err != nil {
			return sandbox.Spec{}, err
		}
	}
	if err := checkHostname(cfg.Hostname); err != nil {
		return sandbox.Spec{}, err
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(cfg)
	if err != nil {
		return sandbox.Spec{}, fmt.Errorf("encode sandbox config: %w", err)
	}
	spec := sandbox.Spec{
		Name:           md.Name,
		Namespace:      md.Namespace,
		UID:            md.Uid,
		Attempt:        md.Attempt,
		Hostname:       cfg.Hostname,
		LogDirectory:   cfg.LogDirectory,
		RuntimeHandler: req.RuntimeHandler,
		Labels:         cfg.Labels,
		Annotations:    cfg.Annotations,
		Raw:            raw,
		// Absent namespace options mean POD for every namespace, the
		// protobuf default the kubelet relies on.
		NetworkMode: sandbox.ModePod,
		IPCMode:     sandbox.ModePod,
		PIDMode:     sandbox.ModePod,
	}
	if dns := cfg.GetDnsConfig(); dns != nil {
		spec.DNS = podfiles.DNS{Servers: dns.Servers, Searches: dns.Searches, Options: dns.Options}
	}
	if linux := cfg.GetLinux(); linux != nil {
		spec.CgroupParent = linux.CgroupParent
		if ns := linux.GetSecurityContext().GetNamespaceOptions(); ns != nil {
			if spec.UserNS, err = podUserns(ns.UsernsOptions); err != nil {
				return sandbox.Spec{}, err
			}
			spec.NetworkMode = namespaceMode(ns.Network)
			spec.IPCMode = namespaceMode(ns.Ipc)
			spec.PIDMode = namespaceMode(ns.Pid)
		}
	}
	if sysctls := cfg.GetLinux().GetSysctls(); len(sysctls) > 0 {
		// Every container of the pod gets these; refused here, a bad
		// one never reaches runc, which would fail each container's
		// init writing it.
		ns := ocispec.Namespaces{HostNetwork: spec.NetworkMode == sandbox.ModeNode, HostIPC: spec.IPCMode == sandbox.ModeNode}
		if _, err := ocispec.ValidateSysctls(sysctls, ns); err != nil {
			return sandbox.Spec{}, fmt.Errorf("config.%w", err)
		}
		if err := ocispec.CheckSysctlsKnown(sysctls, procSys); err != nil {
			return sandbox.Spec{}, fmt.Errorf("config.%w", err)
		}
	}
	if spec.PortMappings, err = portMappings(cfg.PortMappings); err != nil {
		return sandbox.Spec{}, err
	}
	bw, err := bandwidth(cfg.Annotations)
	if err != nil {
		return sandbox.Spec{}, err
	}
	spec.Bandwidth = bw
	return spec, nil
}

// portMappings checks the pod's port mappings and returns those CNI gets.
func portMappings(pms []*runtimeapi.PortMapping) ([]network.PortMapping, error) {
	var out []network.PortMapping
	for i, pm := range pms {
		if pm == nil {
			return nil, invalid(fmt.Sprintf("config.port_mappings[%d]", i), "is empty")
		}
		proto, ok := map[runtimeapi.Protocol]string{
			runtimeapi.Protocol_TCP:  "tcp",
			runtimeapi.Protocol_UDP:  "udp",
			runtimeapi.Protocol_SCTP: "sctp",
		}[pm.Protocol]
		if !ok {
			return nil, invalid(fmt.Sprintf("config.port_mappings[%d].protocol", i), "%d is not TCP, UDP or SCTP", pm.Protocol)
		}
		// A mapping without a host port only documents the port; the
		// kubelet sends those and CNI must not see them.
		if pm.HostPort == 0 && pm.ContainerPort > 0 {
			continue
		}
		out = append(out, network.PortMapping{
			HostPort: pm.HostPort, ContainerPort: pm.ContainerPort, Protocol: proto, HostIP: pm.HostIp,
		})
	}
	return out, nil
}

// procSys is where pod sysctls are looked up; tests may point it at a
// fake tree.
var procSys = "/proc/sys"

// checkMetadataValue refuses characters that have a meaning where pod
// metadata is used (CNI_ARGS separators, paths, control characters) and
// values longer than any Kubernetes object name.
func checkMetadataValue(field, v string) error {
	if len(v) > 253 {
		return invalid(field, "is %d bytes; at most 253 are allowed", len(v))
	}
	if i := strings.IndexFunc(v, func(r rune) bool { return r == ';' || r == '=' || r == '/' || r == ',' || r <= ' ' || r == 0x7f }); i >= 0 {
		return invalid(field, "%q holds %q at byte %d, which is not allowed (CNI_ARGS separators, '/', whitespace and control characters)", v, v[i], i)
	}
	return nil
}

// checkHostname: sethostname(2) takes at most HOST_NAME_MAX (64) bytes, and
// the name lands in /etc/hostname and /etc/hosts, so it must be a host
// name (RFC 1123 labels), refused before namespaces are made. One trailing
// dot (an absolute name) is allowed and kept: with setHostnameAsFQDN and no
// cluster domain the kubelet sends "pod.sub.ns.svc.", and the pod must see
// exactly that name, as it does on containerd and CRI-O.
func checkHostname(h string) error {
	if h == "" {
		return nil
	}
	if len(h) > 64 {
		return invalid("config.hostname", "%q is %d bytes; at most 64 are allowed", h, len(h))
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		ok := label != "" && label[0] != '-' && label[len(label)-1] != '-'
		for _, r := range label {
			ok = ok && (r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}
		if !ok {
			return invalid("config.hostname", "%q is not a host name (dot-separated labels of letters, digits and '-')", h)
		}
	}
	return nil
}

func namespaceMode(m runtimeapi.NamespaceMode) sandbox.NamespaceMode {
	switch m {
	case runtimeapi.NamespaceMode_NODE:
		return sandbox.ModeNode
	case runtimeapi.NamespaceMode_CONTAINER:
		return sandbox.ModeContainer
	case runtimeapi.NamespaceMode_TARGET:
		return sandbox.ModeTarget
	}
	return sandbox.ModePod
}

// bandwidth reads the kubelet's traffic-shaping annotations (quantities in
// bits per second). Burst is left unlimited, as the kubelet always did.
func bandwidth(ann map[string]string) (*network.Bandwidth, error) {
	parse := func(key string) (int64, error) {
		v, ok := ann[key]
		if !ok {
			return 0, nil
		}
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() <= 0 {
			return 0, invalid(fmt.Sprintf("config.annotations[%s]", key), "%q is not a positive quantity such as \"10M\"", v)
		}
		return q.Value(), nil
	}
	in, err := parse(ingressBandwidthAnnotation)
	if err != nil {
		return nil, err
	}
	out, err := parse(egressBandwidthAnnotation)
	if err != nil {
		return nil, err
	}
	if in == 0 && out == 0 {
		return nil, nil
	}
	bw := &network.Bandwidth{IngressRate: in, EgressRate: out}
	if in > 0 {
		bw.IngressBurst = math.MaxInt32
	}
	if out > 0 {
		bw.EgressBurst = math.MaxInt32
	}
	return bw, nil
}

// StopPodSandbox is idempotent: an unknown or stopped sandbox is success.
func (s *Server) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	if req.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "must not be empty")
	}
	if err := s.deps.Sandboxes.Stop(ctx, req.PodSandboxId); err != nil {
		return nil, err
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

// RemovePodSandbox is idempotent: an unknown sandbox is success.
func (s *Server) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	if req.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "must not be empty")
	}
	if err := s.deps.Sandboxes.Remove(ctx, req.PodSandboxId); err != nil {
		return nil, err
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// PodSandboxStatus reports one sandbox; verbose adds JSON details.
func (s *Server) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	if req.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "must not be empty")
	}
	sb, err := s.deps.Sandboxes.Get(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	st := &runtimeapi.PodSandboxStatus{
		Id:             sb.ID,
		Metadata:       metadata(sb),
		State:          criState(sb.State),
		CreatedAt:      sb.CreatedAt,
		Labels:         sb.Spec.Labels,
		Annotations:    sb.Spec.Annotations,
		RuntimeHandler: sb.Spec.RuntimeHandler,
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: &runtimeapi.NamespaceOption{
			Network: criMode(sb.Spec.NetworkMode),
			Ipc:     criMode(sb.Spec.IPCMode),
			Pid:     criMode(sb.Spec.PIDMode),
		}}},
	}
	if ips := sb.IPs(); len(ips) > 0 {
		st.Network = &runtimeapi.PodSandboxNetworkStatus{Ip: ips[0]}
		for _, ip := range ips[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: st}
	if req.Verbose {
		info, err := sandboxInfo(sb)
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": info}
	}
	return resp, nil
}

// sandboxInfo is the verbose JSON an operator (or crictl inspectp) reads.
func sandboxInfo(sb *sandbox.Sandbox) (string, error) {
	info := map[string]any{
		"id":             sb.ID,
		"state":          sb.State,
		"createdAt":      sb.CreatedAt,
		"runtimeHandler": sb.Spec.RuntimeHandler,
		"cgroupParent":   sb.Spec.CgroupParent,
		"runDir":         sb.RunDir,
		"netnsName":      sb.NetnsName,
		"netnsPath":      sb.NetnsPath,
		"ipcPath":        sb.IPCPath,
		"utsPath":        sb.UTSPath,
		"hostNetwork":    sb.Spec.NetworkMode == sandbox.ModeNode,
		"files":          sb.Files(),
	}
	cfg := &runtimeapi.PodSandboxConfig{}
	if err := proto.Unmarshal(sb.Spec.Raw, cfg); err == nil && cfg.Linux != nil {
		if cfg.Linux.Resources != nil {
			info["resources"] = cfg.Linux.Resources
		}
		if cfg.Linux.Overhead != nil {
			info["overhead"] = cfg.Linux.Overhead
		}
	}
	if sb.Network != nil {
		info["cniNetwork"] = sb.Network.NetworkName
		info["cniConfigFile"] = sb.Network.ConfigFile
		info["cniResult"] = sb.Network.Result
		info["networkDown"] = sb.NetworkDown
	}
	b, err := json.Marshal(info)
	if err != nil {
		return "", fmt.Errorf("encode sandbox info: %w", err)
	}
	return string(b), nil
}

// ListPodSandbox lists sandboxes from memory.
func (s *Server) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	return &runtimeapi.ListPodSandboxResponse{Items: s.podSandboxes(req.GetFilter())}, nil
}

// StreamPodSandboxes is ListPodSandbox in chunks, for nodes whose list
// would not fit one gRPC message.
func (s *Server) StreamPodSandboxes(req *runtimeapi.StreamPodSandboxesRequest, stream runtimeapi.RuntimeService_StreamPodSandboxesServer) error {
	return toStatus(sendInChunks(s.podSandboxes(req.GetFilter()), func(items []*runtimeapi.PodSandbox) error {
		return stream.Send(&runtimeapi.StreamPodSandboxesResponse{PodSandboxes: items})
	}))
}

func (s *Server) podSandboxes(rf *runtimeapi.PodSandboxFilter) []*runtimeapi.PodSandbox {
	var f sandbox.Filter
	if rf != nil {
		f.IDPrefix = rf.Id
		f.Labels = rf.LabelSelector
		if rf.State != nil {
			f.State = domainState(rf.State.State)
		}
	}
	// Read in place and built once per record version, as for
	// ListContainers.
	sbs := s.deps.Sandboxes.View(f)
	if len(sbs) == 0 {
		return nil
	}
	complete := f.IDPrefix == "" && f.State == "" && len(f.Labels) == 0
	return s.podList.messages(sbs, func(sb *sandbox.Sandbox) string { return sb.ID }, criPodSandboxes, complete)
}

// criPodSandboxes builds the list messages of sbs, allocated in blocks.
func criPodSandboxes(sbs []*sandbox.Sandbox) []*runtimeapi.PodSandbox {
	items := make([]*runtimeapi.PodSandbox, len(sbs))
	pods := make([]runtimeapi.PodSandbox, len(sbs))
	metas := make([]runtimeapi.PodSandboxMetadata, len(sbs))
	for i, sb := range sbs {
		m := &metas[i]
		m.Name, m.Namespace, m.Uid, m.Attempt = sb.Spec.Name, sb.Spec.Namespace, sb.Spec.UID, sb.Spec.Attempt
		p := &pods[i]
		p.Id, p.Metadata, p.State, p.CreatedAt = sb.ID, m, criState(sb.State), sb.CreatedAt
		p.Labels, p.Annotations, p.RuntimeHandler = sb.Spec.Labels, sb.Spec.Annotations, sb.Spec.RuntimeHandler
		items[i] = p
	}
	return items
}

func metadata(sb *sandbox.Sandbox) *runtimeapi.PodSandboxMetadata {
	return &runtimeapi.PodSandboxMetadata{Name: sb.Spec.Name, Namespace: sb.Spec.Namespace, Uid: sb.Spec.UID, Attempt: sb.Spec.Attempt}
}

func criState(st sandbox.State) runtimeapi.PodSandboxState {
	if st == sandbox.StateReady {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

func domainState(st runtimeapi.PodSandboxState) sandbox.State {
	if st == runtimeapi.PodSandboxState_SANDBOX_READY {
		return sandbox.StateReady
	}
	return sandbox.StateNotReady
}

func criMode(m sandbox.NamespaceMode) runtimeapi.NamespaceMode {
	switch m {
	case sandbox.ModeNode:
		return runtimeapi.NamespaceMode_NODE
	case sandbox.ModeContainer:
		return runtimeapi.NamespaceMode_CONTAINER
	case sandbox.ModeTarget:
		return runtimeapi.NamespaceMode_TARGET
	}
	return runtimeapi.NamespaceMode_POD
}

// UpdatePodSandboxResources tells NRI plugins (UpdatePodSandbox, which
// may refuse, then PostUpdatePodSandbox) of the pod-level resources the
// kubelet has just applied to the pod cgroup, and records them in the
// stored sandbox configuration.
func (s *Server) UpdatePodSandboxResources(ctx context.Context, req *runtimeapi.UpdatePodSandboxResourcesRequest) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	if req.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "must not be empty")
	}
	overhead, resources := podLinuxResources(req.Overhead), podLinuxResources(req.Resources)
	err := s.deps.Sandboxes.UpdateResources(ctx, req.PodSandboxId, overhead, resources, func(raw []byte) ([]byte, error) {
		cfg := &runtimeapi.PodSandboxConfig{}
		if err := proto.Unmarshal(raw, cfg); err != nil {
			return nil, fmt.Errorf("decode stored sandbox config: %w", err)
		}
		if cfg.Linux == nil {
			cfg.Linux = &runtimeapi.LinuxPodSandboxConfig{}
		}
		if req.Overhead != nil {
			cfg.Linux.Overhead = req.Overhead
		}
		if req.Resources != nil {
			cfg.Linux.Resources = req.Resources
		}
		return proto.MarshalOptions{Deterministic: true}.Marshal(cfg)
	})
	if err != nil {
		return nil, err
	}
	return &runtimeapi.UpdatePodSandboxResourcesResponse{}, nil
}
