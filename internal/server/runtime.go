package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/internal/version"
)

// Version answers the kubelet's first call.
func (s *Server) Version(ctx context.Context, req *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           "0.1.0",
		RuntimeName:       version.Name,
		RuntimeVersion:    version.Version,
		RuntimeApiVersion: version.CRIAPIVersion,
	}, nil
}

// Status computes the runtime and network conditions on every call, so a
// CNI config that appears later turns the node ready without a restart.
func (s *Server) Status(ctx context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	runtimeCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.RuntimeReady, Status: true}
	if err := s.runtimeUsable(s.deps.Config.DefaultRuntime); err != nil {
		runtimeCond.Status = false
		runtimeCond.Reason = "RuntimeBinaryMissing"
		runtimeCond.Message = err.Error()
	} else if err := s.deps.Probes.Check(s.deps.Config.DefaultRuntime); err != nil {
		runtimeCond.Status = false
		runtimeCond.Reason = "RuntimeHandlerUnusable"
		runtimeCond.Message = err.Error()
	}
	netCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if err := s.deps.Network.Status(); err != nil {
		netCond.Status = false
		netCond.Reason = "NetworkPluginNotReady"
		netCond.Message = err.Error()
	}
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: append([]*runtimeapi.RuntimeCondition{runtimeCond, netCond}, s.handlerConditions()...)},
	}
	for _, name := range s.handlerNames() {
		// The node's status.runtimeHandlers lists what pods may ask
		// for: a handler that failed its probe is left out, and its
		// condition says why.
		if s.deps.Probes.Check(name) != nil {
			continue
		}
		f := s.deps.HandlerFeatures[name]
		features := &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: f.RecursiveReadOnlyMounts, UserNamespaces: f.UserNamespaces}
		resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtimeapi.RuntimeHandler{Name: name, Features: features})
		// The kubelet looks up pods without a RuntimeClass under "".
		if name == s.deps.Config.DefaultRuntime {
			resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtimeapi.RuntimeHandler{Name: "", Features: features})
		}
	}
	// Supplemental groups policy (Merge and Strict, and ContainerStatus.user)
	// is implemented; user namespaces with host network and image-volume
	// mount options are not: say so. The kubelet refuses a Strict pod on a
	// runtime that does not report the first.
	resp.Features = &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true}
	if req.Verbose {
		info := map[string]any{
			"config":          s.deps.Config,
			"podCIDR":         s.deps.Network.PodCIDR(),
			"handlerFeatures": s.deps.HandlerFeatures,
			"handlerProbes":   s.deps.Probes.Results(),
			"checkpoint":      s.deps.Checkpoint,
			"cgroups":         s.deps.Cgroups,
			"userNamespaces":  s.deps.Userns,
			"lsm":             s.deps.LSM,
		}
		b, err := json.Marshal(info)
		if err != nil {
			return nil, fmt.Errorf("encode status info: %w", err)
		}
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

// HandlerConditionPrefix starts the type of the condition each probed
// runtime handler gets in Status ("RuntimeHandlerReady/crun"). The kubelet
// reads only RuntimeReady and NetworkReady; these are for people and
// tools (crictl info).
const HandlerConditionPrefix = "RuntimeHandlerReady/"

// handlerConditions reports each probed handler: usable, or the runtime's
// own error from its trial container.
func (s *Server) handlerConditions() []*runtimeapi.RuntimeCondition {
	probes := s.deps.Probes.Results()
	var out []*runtimeapi.RuntimeCondition
	for _, name := range s.handlerNames() {
		res, ok := probes[name]
		if s.deps.Probes.Probing(name) {
			// Counted usable meanwhile; pods asking for it wait for
			// the result.
			c := &runtimeapi.RuntimeCondition{Type: HandlerConditionPrefix + name, Status: !ok || res.Usable, Reason: "HandlerProbing",
				Message: "its trial container is under way; pods asking for it wait for the result"}
			out = append(out, c)
			continue
		}
		if !ok {
			continue
		}
		c := &runtimeapi.RuntimeCondition{Type: HandlerConditionPrefix + name, Status: res.Usable}
		if !res.Usable {
			c.Reason = "HandlerProbeFailed"
			c.Message = res.Error
		}
		out = append(out, c)
	}
	return out
}

func (s *Server) handlerNames() []string {
	var names []string
	for n := range s.deps.Config.Runtimes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// runtimeUsable checks that a handler's binary exists and is executable.
func (s *Server) runtimeUsable(handler string) error {
	rt, ok := s.deps.Config.Runtimes[handler]
	if !ok {
		return fmt.Errorf("runtime handler %q is not configured", handler)
	}
	st, err := os.Stat(rt.RuntimePath)
	if err != nil {
		return fmt.Errorf("runtime handler %q: %w (install it or set runtimes.%s.runtime_path)", handler, err, handler)
	}
	if st.Mode()&0o111 == 0 {
		return fmt.Errorf("runtime handler %q: %s is not executable", handler, rt.RuntimePath)
	}
	return nil
}

// RuntimeConfig tells the kubelet which cgroup driver to use.
func (s *Server) RuntimeConfig(ctx context.Context, req *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	driver := runtimeapi.CgroupDriver_CGROUPFS
	if s.deps.Config.CgroupManager == "systemd" {
		driver = runtimeapi.CgroupDriver_SYSTEMD
	}
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: driver}}, nil
}

// UpdateRuntimeConfig records the node's pod CIDR.
func (s *Server) UpdateRuntimeConfig(ctx context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if err := s.deps.Network.SetPodCIDR(cidr); err != nil {
		return nil, invalid("runtime_config.network_config.pod_cidr", "%v", err)
	}
	s.log.Info("pod CIDR updated", "podCIDR", cidr)
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}
