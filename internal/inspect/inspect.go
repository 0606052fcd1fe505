// Package inspect serves floe's HTTP inspect endpoint on a unix socket
// (GET /info, GET /pods, GET /pods/<id|prefix|namespace/name>) and is the
// client `floe inspect` and `floe status` use. A pod report ties together
// what operators otherwise hunt for by hand: the pinned netns, the host
// veth and its bridge, the CNI result and the cgroup parent.
package inspect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"time"

	"github.com/floe-cri/floe/internal/cdi"
	"github.com/floe-cri/floe/internal/cgroups"
	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/errdefs"
	"github.com/floe-cri/floe/internal/handlerprobe"
	"github.com/floe-cri/floe/internal/images"
	"github.com/floe-cri/floe/internal/lsm"
	"github.com/floe-cri/floe/internal/network"
	"github.com/floe-cri/floe/internal/nri"
	"github.com/floe-cri/floe/internal/sandbox"
	"github.com/floe-cri/floe/internal/unixsock"
	"github.com/floe-cri/floe/internal/userns"
	"github.com/floe-cri/floe/internal/version"
)

// Info is GET /info.
//
// The package comment lists the endpoints; GET /containers/<ref> is served
// too (see container.go).
type Info struct {
	Version        string             `json:"version"`
	ConfigFiles    []string           `json:"configFiles"`
	CRISocket      string             `json:"criSocket"`
	InspectSocket  string             `json:"inspectSocket"`
	MetricsAddress string             `json:"metricsAddress,omitempty"`
	StreamingAddr  string             `json:"streamingAddress,omitempty"`
	StateDir       string             `json:"stateDir"`
	RunDir         string             `json:"runDir"`
	CgroupDriver   string             `json:"cgroupDriver"`
	NetnsDir       string             `json:"netnsDir"`
	CNIConfigDir   string             `json:"cniConfigDir"`
	CNIConfigFile  string             `json:"cniConfigFile,omitempty"`
	CNINetwork     string             `json:"cniNetwork,omitempty"`
	CNIError       string             `json:"cniError,omitempty"`
	DefaultRuntime string             `json:"defaultRuntime"`
	Runtimes       map[string]Runtime `json:"runtimes"`
	Storage        *images.StoreInfo  `json:"storage,omitempty"`
	// Cgroups is the host's cgroup layout and the controllers runc can
	// set limits with; limits outside it are left out or refused.
	Cgroups *cgroups.Support `json:"cgroups,omitempty"`
	// DefaultIDMappings are the user-namespace mappings pods get when
	// they ask for none: none, a pod without userns_options mode POD runs
	// in the host's user namespace.
	DefaultIDMappings []string `json:"defaultIdMappings"`
	// UserNamespaces says whether pods may run in a user namespace of
	// their own (hostUsers: false), by which mechanism, or why not.
	UserNamespaces *userns.Support `json:"userNamespaces,omitempty"`
	// LSM is which Linux security modules (AppArmor, SELinux) the node
	// enforces, so which profiles and labels containers can get.
	LSM *lsm.Host `json:"lsm,omitempty"`
	// AutoUserNamespaces says where the ids of pods asking for
	// io.kubernetes.cri-o.userns-mode=auto come from, or why there are
	// none.
	AutoUserNamespaces *userns.AutoStatus `json:"autoUserNamespaces,omitempty"`
	// NRI is the plugin socket and the plugins connected; CDI the spec
	// directories and the devices they describe.
	NRI nri.Status  `json:"nri"`
	CDI *cdi.Status `json:"cdi,omitempty"`
	// Extra holds sections other services add (storage driver and root,
	// default id mappings) once they exist.
	Extra map[string]any `json:"extra,omitempty"`
}

// Runtime describes one runtime handler.
type Runtime struct {
	Path string `json:"path"`
	// Root is the state root runc is run with; "" means the runtime's
	// own default, which is what `runc list` reads.
	Root string `json:"root"`
	// Problem says why the handler cannot run containers ("" if it can).
	Problem string `json:"problem,omitempty"`
	// Probe is the latest trial container the handler's runtime made
	// and deleted (startup, SIGHUP); its error is the runtime's own.
	Probe *handlerprobe.Result `json:"probe,omitempty"`
}

// Pod is GET /pods/<id>.
type Pod struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	Namespace      string            `json:"namespace"`
	UID            string            `json:"uid"`
	Attempt        uint32            `json:"attempt"`
	State          string            `json:"state"`
	CreatedAt      time.Time         `json:"createdAt"`
	RuntimeHandler string            `json:"runtimeHandler"`
	IPs            []string          `json:"ips,omitempty"`
	HostNetwork    bool              `json:"hostNetwork"`
	NetnsName      string            `json:"netnsName,omitempty"`
	NetnsPath      string            `json:"netnsPath,omitempty"`
	IPCPath        string            `json:"ipcPath,omitempty"`
	UTSPath        string            `json:"utsPath,omitempty"`
	HostLink       *network.HostLink `json:"hostLink,omitempty"`
	HostLinkError  string            `json:"hostLinkError,omitempty"`
	CNINetwork     string            `json:"cniNetwork,omitempty"`
	CNIConfigFile  string            `json:"cniConfigFile,omitempty"`
	CNIResult      json.RawMessage   `json:"cniResult,omitempty"`
	CgroupParent   string            `json:"cgroupParent,omitempty"`
	RunDir         string            `json:"runDir"`
	Labels         map[string]string `json:"labels,omitempty"`
	PodInitPid     int               `json:"podInitPid,omitempty"`
	Containers     []PodContainer    `json:"containers,omitempty"`
}

// PodContainer is one line about a container in a pod report.
type PodContainer struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State string `json:"state"`
	Pid   int    `json:"pid,omitempty"`
}

// Sources are what the endpoint reports on.
type Sources struct {
	Config         *config.Config
	Sandboxes      *sandbox.Manager
	Containers     *container.Manager // nil when containers are unavailable
	Images         *images.Service
	Network        *network.Manager
	Cgroups        *cgroups.Support
	Userns         *userns.Support
	LSM            *lsm.Host
	SubIDs         *userns.Allocator // nil when floe hands out no ids
	Probes         *handlerprobe.Registry
	MetricsAddress func() string
	StreamingAddr  func() string
	NRI            *nri.NRI      // nil when NRI is off
	CDI            *cdi.Registry // nil without a registry
	Log            *slog.Logger
}

// podReport adds the pod's containers to PodReport.
func podReport(src Sources, sb *sandbox.Sandbox) *Pod {
	p := PodReport(sb)
	if src.Containers != nil {
		for _, c := range src.Containers.List(container.Filter{SandboxID: sb.ID}) {
			pc := PodContainer{ID: c.ID, Name: c.Spec.Name, State: string(c.State)}
			if c.Monitor != nil && c.State == container.StateRunning {
				pc.Pid = c.Monitor.Pid
			}
			p.Containers = append(p.Containers, pc)
		}
	}
	return p
}

// PodReport builds the report of one sandbox.
func PodReport(sb *sandbox.Sandbox) *Pod {
	p := &Pod{
		ID: sb.ID, Name: sb.Spec.Name, Namespace: sb.Spec.Namespace, UID: sb.Spec.UID, Attempt: sb.Spec.Attempt,
		State: string(sb.State), CreatedAt: time.Unix(0, sb.CreatedAt).UTC(), RuntimeHandler: sb.Spec.RuntimeHandler,
		IPs: sb.IPs(), HostNetwork: sb.Spec.NetworkMode == sandbox.ModeNode,
		NetnsName: sb.NetnsName, NetnsPath: sb.NetnsPath, IPCPath: sb.IPCPath, UTSPath: sb.UTSPath,
		CgroupParent: sb.Spec.CgroupParent, RunDir: sb.RunDir, Labels: sb.Spec.Labels,
	}
	if sb.Network != nil {
		p.CNINetwork, p.CNIConfigFile, p.CNIResult = sb.Network.NetworkName, sb.Network.ConfigFile, sb.Network.Result
	}
	if sb.PodInit != nil {
		p.PodInitPid = sb.PodInit.Pid
	}
	if sb.State == sandbox.StateReady && sb.NetnsPath != "" && sb.Network != nil {
		hl, err := network.FindHostLink(sb.NetnsPath, sb.Network.IfName)
		p.HostLink = hl
		if err != nil {
			p.HostLinkError = err.Error()
		}
	}
	return p
}

// Handler returns the HTTP handler of the endpoint.
func Handler(src Sources) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /info", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, info(src))
	})
	mux.HandleFunc("GET /pods", func(w http.ResponseWriter, r *http.Request) {
		pods := []*Pod{}
		for _, sb := range src.Sandboxes.List(sandbox.Filter{}) {
			pods = append(pods, podReport(src, sb))
		}
		writeJSON(w, http.StatusOK, pods)
	})
	mux.HandleFunc("GET /pods/{ref...}", func(w http.ResponseWriter, r *http.Request) {
		sb, err := findPod(src.Sandboxes, r.PathValue("ref"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, podReport(src, sb))
	})
	mux.HandleFunc("GET /containers/{ref...}", func(w http.ResponseWriter, r *http.Request) {
		if src.Containers == nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "containers are not available on this floe (see the startup checks)"})
			return
		}
		c, err := findContainer(src.Containers, src.Sandboxes, r.PathValue("ref"))
		if err != nil {
			writeError(w, err)
			return
		}
		sb, _ := src.Sandboxes.Get(c.SandboxID)
		writeJSON(w, http.StatusOK, ContainerReport(src.Config, c, sb))
	})
	return mux
}

// findPod accepts an id, a unique id prefix, "namespace/name" or a name
// that is unique across namespaces.
func findPod(m *sandbox.Manager, ref string) (*sandbox.Sandbox, error) {
	if sb, err := m.Get(ref); err == nil || errdefs.KindOf(err) != errdefs.KindNotFound {
		return sb, err
	}
	ns, name, qualified := strings.Cut(ref, "/")
	if !qualified {
		name, ns = ref, ""
	}
	var matches []*sandbox.Sandbox
	for _, sb := range m.List(sandbox.Filter{}) {
		if sb.Spec.Name == name && (ns == "" || sb.Spec.Namespace == ns) {
			matches = append(matches, sb)
		}
	}
	switch {
	case len(matches) == 1:
		return matches[0], nil
	case len(matches) > 1:
		// Attempts of one pod share the name; the newest is what a person
		// means. Different namespaces are ambiguous.
		newest := matches[len(matches)-1]
		for _, sb := range matches {
			if sb.Spec.Namespace != newest.Spec.Namespace {
				return nil, errdefs.InvalidArgument("pod", "%q names pods in several namespaces; write namespace/name", ref)
			}
		}
		return newest, nil
	}
	return nil, errdefs.NotFound("no pod with id, id prefix or name %q", ref)
}

func info(src Sources) *Info {
	cfg := src.Config
	in := &Info{
		Version: version.Version, ConfigFiles: cfg.Sources, CRISocket: cfg.Socket, InspectSocket: cfg.InspectSocketPath(),
		StateDir: cfg.StateDir, RunDir: cfg.RunDir, CgroupDriver: cfg.CgroupManager,
		NetnsDir: cfg.Network.NetnsDir, CNIConfigDir: cfg.Network.CNIConfigDir,
		DefaultRuntime: cfg.DefaultRuntime, Runtimes: map[string]Runtime{},
		Cgroups: src.Cgroups, UserNamespaces: src.Userns, LSM: src.LSM,
	}
	if src.SubIDs != nil {
		st := src.SubIDs.Status()
		in.AutoUserNamespaces = &st
	}
	if src.MetricsAddress != nil {
		in.MetricsAddress = src.MetricsAddress()
	}
	if src.StreamingAddr != nil {
		in.StreamingAddr = src.StreamingAddr()
	}
	if list, file, err := src.Network.ActiveConfig(); err == nil {
		in.CNIConfigFile, in.CNINetwork = file, list.Name
	} else {
		in.CNIError = err.Error()
	}
	for name, rt := range cfg.Runtimes {
		r := Runtime{Path: rt.RuntimePath, Root: rt.RuntimeRoot}
		monitor := rt.MonitorPath
		if monitor == "" {
			monitor = "/usr/bin/conmon"
		}
		for _, bin := range []string{rt.RuntimePath, monitor} {
			if _, err := exec.LookPath(bin); err != nil && r.Problem == "" {
				r.Problem = err.Error()
			}
		}
		if res, ok := src.Probes.Results()[name]; ok {
			r.Probe = &res
			if !res.Usable && r.Problem == "" {
				r.Problem = res.Error
			}
		}
		in.Runtimes[name] = r
	}
	if src.Images != nil {
		si := src.Images.Info()
		in.Storage = &si
	}
	in.DefaultIDMappings = []string{}
	in.NRI = src.NRI.Status()
	if src.CDI != nil {
		st := src.CDI.Status()
		in.CDI = &st
	}
	return in
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch errdefs.KindOf(err) {
	case errdefs.KindNotFound:
		code = http.StatusNotFound
	case errdefs.KindInvalidArgument:
		code = http.StatusBadRequest
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Server is the running endpoint.
type Server struct {
	srv  *http.Server
	done chan struct{}
}

// Serve listens on the unix socket path (mode 0660) and serves h.
func Serve(path string, h http.Handler, log *slog.Logger) (*Server, error) {
	l, err := unixsock.Listen(path, 0o660)
	if err != nil {
		return nil, fmt.Errorf("inspect endpoint: %w", err)
	}
	s := &Server{srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("inspect endpoint stopped", "err", err)
		}
	}()
	return s, nil
}

// Close stops the endpoint and waits for it.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
	<-s.done
}
