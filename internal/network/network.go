// Package network attaches pods to the node's network through CNI
// (libcni). It finds the active network configuration, runs ADD with the
// Kubernetes CNI_ARGS and capability arguments, and runs DEL with the exact
// configuration bytes that were used for ADD, which the caller stores with
// the sandbox, so a changed or deleted config file cannot strand an IP.
package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	current "github.com/containernetworking/cni/pkg/types/100"
	"go.opentelemetry.io/otel/attribute"

	"github.com/floe-cri/floe/internal/nspin"
	"github.com/floe-cri/floe/internal/tracing"
)

// PodInfo identifies the pod to the CNI plugins.
type PodInfo struct {
	ID        string // sandbox id, sent as K8S_POD_INFRA_CONTAINER_ID and CNI container id
	Name      string
	Namespace string
	UID       string
	NetnsPath string
	// PortMappings and Bandwidth are capability arguments; plugins that do
	// not declare the capability never see them.
	PortMappings []PortMapping
	Bandwidth    *Bandwidth
}

// PortMapping is the portMappings capability entry.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Bandwidth is the bandwidth capability entry (bits per second).
type Bandwidth struct {
	IngressRate  int64 `json:"ingressRate,omitempty"`
	IngressBurst int64 `json:"ingressBurst,omitempty"`
	EgressRate   int64 `json:"egressRate,omitempty"`
	EgressBurst  int64 `json:"egressBurst,omitempty"`
}

// Attachment is what ADD produced and what DEL needs later.
type Attachment struct {
	ConfigFile  string          `json:"configFile"`
	NetworkName string          `json:"networkName"`
	ConfigBytes json.RawMessage `json:"config"`
	Result      json.RawMessage `json:"result,omitempty"`
	IPs         []string        `json:"ips,omitempty"`
	// CapabilityArgs are kept so DEL passes what ADD passed (portmap needs
	// the mappings to remove its rules).
	CapabilityArgs map[string]any `json:"capabilityArgs,omitempty"`
	IfName         string         `json:"ifName"`
}

// PodIfName is the interface name inside the pod.
const PodIfName = "eth0"

// Manager runs CNI for pods.
type Manager struct {
	confDir    string
	pluginDirs []string
	cni        *libcni.CNIConfig

	mu      sync.Mutex
	podCIDR string
	observe func(op string, took time.Duration, err error)
}

// OnOperation registers a function told of every ADD ("add") and DEL
// ("del") with its duration and error, for metrics.
func (m *Manager) OnOperation(f func(op string, took time.Duration, err error)) {
	m.mu.Lock()
	m.observe = f
	m.mu.Unlock()
}

func (m *Manager) record(op string, start time.Time, err error) {
	m.mu.Lock()
	f := m.observe
	m.mu.Unlock()
	if f != nil {
		f(op, time.Since(start), err)
	}
}

// New returns a Manager. cacheDir holds libcni's result cache.
func New(confDir string, pluginDirs []string, cacheDir string) *Manager {
	return &Manager{
		confDir:    confDir,
		pluginDirs: pluginDirs,
		cni:        libcni.NewCNIConfigWithCacheDir(pluginDirs, cacheDir, &pluginExec{}),
	}
}

// SetPodCIDR records the node's pod CIDR(s) from UpdateRuntimeConfig (a
// comma-separated list on dual-stack nodes); they are offered to IPAM
// plugins that declare the ipRanges capability.
func (m *Manager) SetPodCIDR(cidr string) error {
	for _, c := range splitCIDRs(cidr) {
		if _, _, err := net.ParseCIDR(c); err != nil {
			return fmt.Errorf("pod CIDR %q: %w", c, err)
		}
	}
	m.mu.Lock()
	m.podCIDR = cidr
	m.mu.Unlock()
	return nil
}

// PodCIDR returns the recorded pod CIDR.
func (m *Manager) PodCIDR() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.podCIDR
}

// ErrNoConfig means the CNI config directory has no usable network.
var ErrNoConfig = errors.New("no CNI network configuration")

// ActiveConfig loads the first usable configuration in name order. It reads
// the directory on every call so a config that appears later is picked up
// without a restart.
func (m *Manager) ActiveConfig() (*libcni.NetworkConfigList, string, error) {
	files, err := libcni.ConfFiles(m.confDir, []string{".conflist", ".conf", ".json"})
	if err != nil {
		return nil, "", fmt.Errorf("read CNI config dir %s: %w", m.confDir, err)
	}
	sort.Strings(files)
	var problems []string
	for _, f := range files {
		list, err := loadFile(f)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", filepath.Base(f), err))
			continue
		}
		return list, f, nil
	}
	if len(problems) > 0 {
		return nil, "", fmt.Errorf("%w in %s (%s)", ErrNoConfig, m.confDir, strings.Join(problems, "; "))
	}
	return nil, "", fmt.Errorf("%w in %s: install a .conflist there (see contrib/cni/)", ErrNoConfig, m.confDir)
}

func splitCIDRs(s string) []string {
	var out []string
	for _, c := range strings.Split(s, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

func loadFile(path string) (*libcni.NetworkConfigList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if _, isList := probe["plugins"]; !isList {
		// A single-plugin .conf: wrap it into a list so one code path
		// (and one stored format) serves both.
		var name, version string
		json.Unmarshal(probe["name"], &name)
		json.Unmarshal(probe["cniVersion"], &version)
		data, err = json.Marshal(map[string]any{"name": name, "cniVersion": version, "plugins": []json.RawMessage{data}})
		if err != nil {
			return nil, err
		}
	}
	list, err := libcni.NetworkConfFromBytes(data)
	if err != nil {
		return nil, err
	}
	if len(list.Plugins) == 0 {
		return nil, fmt.Errorf("network %q has no plugins", list.Name)
	}
	return list, nil
}

// Status reports nil when pod networking can be set up.
func (m *Manager) Status() error {
	list, _, err := m.ActiveConfig()
	if err != nil {
		return err
	}
	for _, p := range list.Plugins {
		if _, err := invoke.FindInPath(p.Network.Type, m.pluginDirs); err != nil {
			return fmt.Errorf("CNI plugin %q of network %q: %w", p.Network.Type, list.Name, err)
		}
	}
	return nil
}

func (m *Manager) runtimeConf(pod PodInfo, caps map[string]any) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: pod.ID,
		NetNS:       pod.NetnsPath,
		IfName:      PodIfName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", pod.ID},
			{"K8S_POD_UID", pod.UID},
		},
		CapabilityArgs: caps,
	}
}

func (m *Manager) capabilityArgs(pod PodInfo) map[string]any {
	caps := map[string]any{}
	if len(pod.PortMappings) > 0 {
		caps["portMappings"] = pod.PortMappings
	}
	if pod.Bandwidth != nil {
		caps["bandwidth"] = pod.Bandwidth
	}
	if cidrs := splitCIDRs(m.PodCIDR()); len(cidrs) > 0 {
		ranges := make([][]map[string]string, 0, len(cidrs))
		for _, c := range cidrs {
			ranges = append(ranges, []map[string]string{{"subnet": c}})
		}
		caps["ipRanges"] = ranges
	}
	return caps
}

// Plan picks the active configuration and returns the attachment ADD will
// use, before anything runs. The caller records it first, so a crash during
// ADD leaves enough behind for a DEL with the same configuration.
func (m *Manager) Plan(pod PodInfo) (*Attachment, error) {
	list, file, err := m.ActiveConfig()
	if err != nil {
		return nil, err
	}
	return &Attachment{
		ConfigFile:     file,
		NetworkName:    list.Name,
		ConfigBytes:    list.Bytes,
		CapabilityArgs: m.capabilityArgs(pod),
		IfName:         PodIfName,
	}, nil
}

// Add runs ADD with a planned attachment and fills in its result. On
// failure it runs DEL itself so IPAM reservations and half-made links are
// released, and returns the ADD error.
func (m *Manager) Add(ctx context.Context, pod PodInfo, att *Attachment) error {
	list, err := libcni.NetworkConfFromBytes(att.ConfigBytes)
	if err != nil {
		return fmt.Errorf("decode CNI config %s: %w", att.ConfigFile, err)
	}
	start := time.Now()
	spanCtx, span := tracing.Start(ctx, "cni.add", tracing.AttrPodID.String(pod.ID), attribute.String("cni.network", list.Name))
	res, err := m.cni.AddNetworkList(spanCtx, list, m.runtimeConf(pod, att.CapabilityArgs))
	tracing.End(span, err)
	m.record("add", start, err)
	if err != nil {
		delCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if delErr := m.Teardown(delCtx, pod, att); delErr != nil {
			err = fmt.Errorf("%w (and the cleanup DEL failed: %v)", err, delErr)
		}
		return fmt.Errorf("CNI network %q ADD for pod %s/%s: %w", list.Name, pod.Namespace, pod.Name, err)
	}
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		return fmt.Errorf("convert CNI result: %w", err)
	}
	if att.Result, err = json.Marshal(cur); err != nil {
		return fmt.Errorf("encode CNI result: %w", err)
	}
	att.IPs = podIPs(cur)
	return nil
}

// podIPs returns the IPs on the pod interface (or every IP when no
// interface is named), IPv4 first, as the kubelet wants the primary first.
func podIPs(r *current.Result) []string {
	var v4, v6 []string
	for _, ip := range r.IPs {
		if ip.Interface != nil && *ip.Interface < len(r.Interfaces) {
			iface := r.Interfaces[*ip.Interface]
			if iface.Sandbox == "" {
				continue
			}
		}
		if ip.Address.IP.To4() != nil {
			v4 = append(v4, ip.Address.IP.String())
		} else {
			v6 = append(v6, ip.Address.IP.String())
		}
	}
	return append(v4, v6...)
}

// Teardown runs DEL with the stored configuration. A netns that is already
// gone is passed as empty, which plugins accept for cleanup of IPAM.
func (m *Manager) Teardown(ctx context.Context, pod PodInfo, att *Attachment) error {
	list, err := libcni.NetworkConfFromBytes(att.ConfigBytes)
	if err != nil {
		return fmt.Errorf("decode stored CNI config of pod %s: %w", pod.ID, err)
	}
	// DEL without a netns when the pin is gone, or was never made: a
	// crash can leave the empty mount target without the namespace on it,
	// and plugins refuse a path that is not a network namespace.
	if pod.NetnsPath != "" && !nspin.IsPinned(pod.NetnsPath) {
		pod.NetnsPath = ""
	}
	start := time.Now()
	spanCtx, span := tracing.Start(ctx, "cni.del", tracing.AttrPodID.String(pod.ID), attribute.String("cni.network", list.Name))
	err = m.cni.DelNetworkList(spanCtx, list, m.runtimeConf(pod, att.CapabilityArgs))
	tracing.End(span, err)
	m.record("del", start, err)
	if err != nil {
		return fmt.Errorf("CNI network %q DEL for pod %s/%s: %w", list.Name, pod.Namespace, pod.Name, err)
	}
	return nil
}
