package network

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
)

func TestActiveConfigPicksFirstUsableFileAndWrapsSingleConf(t *testing.T) {
	dir := t.TempDir()
	m := New(dir, []string{"/usr/lib/cni"}, t.TempDir())
	if _, _, err := m.ActiveConfig(); !errors.Is(err, ErrNoConfig) {
		t.Fatalf("empty dir: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "05-broken.conflist"), []byte("{not json"), 0o644)
	os.WriteFile(filepath.Join(dir, "20-single.conf"), []byte(`{"cniVersion":"1.0.0","name":"single","type":"bridge"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "30-list.conflist"), []byte(`{"cniVersion":"1.0.0","name":"list","plugins":[{"type":"bridge"}]}`), 0o644)
	list, file, err := m.ActiveConfig()
	if err != nil {
		t.Fatal(err)
	}
	if list.Name != "single" || filepath.Base(file) != "20-single.conf" || len(list.Plugins) != 1 || list.Plugins[0].Network.Type != "bridge" {
		t.Errorf("picked %s (%s) with %d plugins", list.Name, file, len(list.Plugins))
	}
	os.Remove(filepath.Join(dir, "20-single.conf"))
	os.Remove(filepath.Join(dir, "30-list.conflist"))
	if _, _, err := m.ActiveConfig(); err == nil || !strings.Contains(err.Error(), "05-broken.conflist") {
		t.Errorf("a broken file must be named: %v", err)
	}
}

func TestCapabilityArgs(t *testing.T) {
	m := New(t.TempDir(), nil, t.TempDir())
	if err := m.SetPodCIDR("10.1.0.0/24, fd00::/64"); err != nil {
		t.Fatal(err)
	}
	caps := m.capabilityArgs(PodInfo{PortMappings: []PortMapping{{HostPort: 80, ContainerPort: 8080, Protocol: "tcp"}}})
	ranges, _ := caps["ipRanges"].([][]map[string]string)
	if len(ranges) != 2 || ranges[1][0]["subnet"] != "fd00::/64" {
		t.Errorf("ipRanges = %v", caps["ipRanges"])
	}
	if _, ok := caps["portMappings"]; !ok {
		t.Errorf("portMappings missing")
	}
	if _, ok := caps["bandwidth"]; ok {
		t.Errorf("bandwidth must be absent without annotations")
	}
	if err := m.SetPodCIDR("10.1.0.0/33"); err == nil {
		t.Errorf("bad CIDR accepted")
	}
}

func TestPodIPsPrimaryV4FirstAndOnlyPodInterface(t *testing.T) {
	host, pod := 0, 1
	r := &current.Result{
		Interfaces: []*current.Interface{{Name: "cni0"}, {Name: "eth0", Sandbox: "/run/netns/x"}},
		IPs: []*current.IPConfig{
			{Interface: &pod, Address: net.IPNet{IP: net.ParseIP("fd00::5"), Mask: net.CIDRMask(64, 128)}},
			{Interface: &host, Address: net.IPNet{IP: net.ParseIP("10.0.0.1"), Mask: net.CIDRMask(24, 32)}},
			{Interface: &pod, Address: net.IPNet{IP: net.ParseIP("10.0.0.5"), Mask: net.CIDRMask(24, 32)}},
		},
	}
	got := podIPs(r)
	if len(got) != 2 || got[0] != "10.0.0.5" || got[1] != "fd00::5" {
		t.Errorf("podIPs = %v", got)
	}
}
