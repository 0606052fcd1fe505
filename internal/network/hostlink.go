package network

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// HostLink is the host side of a pod's veth pair: what an operator looks
// for in `ip link` to find a pod's traffic.
type HostLink struct {
	Name        string `json:"name"`
	Index       int    `json:"ifindex"`
	MAC         string `json:"mac,omitempty"`
	Bridge      string `json:"bridge,omitempty"`
	PodIfName   string `json:"podIfName"`
	PodIfIndex  int    `json:"podIfIndex"`
	PodMAC      string `json:"podMac,omitempty"`
	PodLinkType string `json:"podLinkType"`
}

// FindHostLink follows the pod interface's peer index (IFLA_LINK) from
// inside the pod's netns to the link in the host netns, and its master.
// It uses netlink sockets opened in the pod netns, so no thread switches
// namespaces.
func FindHostLink(netnsPath, ifName string) (*HostLink, error) {
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", netnsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", netnsPath, err)
	}
	defer h.Close()
	podLink, err := h.LinkByName(ifName)
	if err != nil {
		return nil, fmt.Errorf("find %s in %s: %w", ifName, netnsPath, err)
	}
	attrs := podLink.Attrs()
	hl := &HostLink{PodIfName: ifName, PodIfIndex: attrs.Index, PodMAC: attrs.HardwareAddr.String(), PodLinkType: podLink.Type()}
	if attrs.ParentIndex == 0 {
		return hl, fmt.Errorf("%s in %s has no peer link (type %s)", ifName, netnsPath, podLink.Type())
	}
	host, err := netlink.LinkByIndex(attrs.ParentIndex)
	if err != nil {
		return hl, fmt.Errorf("find host peer ifindex %d of %s: %w", attrs.ParentIndex, ifName, err)
	}
	hl.Name, hl.Index, hl.MAC = host.Attrs().Name, host.Attrs().Index, host.Attrs().HardwareAddr.String()
	if m := host.Attrs().MasterIndex; m != 0 {
		if master, err := netlink.LinkByIndex(m); err == nil {
			hl.Bridge = master.Attrs().Name
		}
	}
	return hl, nil
}
