package ocispec

import (
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/floe-cri/floe/internal/errdefs"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestComputeCapabilities(t *testing.T) {
	all := AllCapabilities()
	noSysResource := slices.DeleteFunc(AllCapabilities(), func(c string) bool { return c == "CAP_SYS_RESOURCE" })
	sorted := func(caps ...string) []string {
		var out []string
		for _, c := range capNames {
			if slices.Contains(caps, c) {
				out = append(out, c)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		req        Capabilities
		privileged bool
		bounding   []string
		want       []string
	}{
		{name: "defaults", bounding: all, want: sorted(DefaultCapabilities...)},
		{name: "add lower case without prefix", req: Capabilities{Add: []string{"net_admin"}}, bounding: all,
			want: sorted(append(slices.Clone(DefaultCapabilities), "CAP_NET_ADMIN")...)},
		{name: "drop", req: Capabilities{Drop: []string{"CAP_CHOWN", "KILL"}}, bounding: all,
			want: sorted(slices.DeleteFunc(slices.Clone(DefaultCapabilities), func(c string) bool { return c == "CAP_CHOWN" || c == "CAP_KILL" })...)},
		{name: "drop all add one", req: Capabilities{Drop: []string{"ALL"}, Add: []string{"NET_BIND_SERVICE"}}, bounding: all, want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "drop all", req: Capabilities{Drop: []string{"all"}}, bounding: all, want: nil},
		{name: "add all", req: Capabilities{Add: []string{"ALL"}}, bounding: all, want: all},
		{name: "add all drop one", req: Capabilities{Add: []string{"ALL"}, Drop: []string{"SYS_ADMIN"}}, bounding: all,
			want: slices.DeleteFunc(AllCapabilities(), func(c string) bool { return c == "CAP_SYS_ADMIN" })},
		{name: "privileged", privileged: true, bounding: all, want: all},
		{name: "privileged within bounding set", privileged: true, bounding: noSysResource, want: noSysResource},
		{name: "add outside bounding set left out", req: Capabilities{Add: []string{"SYS_RESOURCE", "SYS_ADMIN"}}, bounding: noSysResource,
			want: sorted(append(slices.Clone(DefaultCapabilities), "CAP_SYS_ADMIN")...)},
	} {
		got, err := ComputeCapabilities(DefaultCapabilities, tc.req, tc.privileged, tc.bounding, quiet)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %v, %v\nwant %v", tc.name, got, err, tc.want)
		}
	}
	if _, err := ComputeCapabilities(DefaultCapabilities, Capabilities{Add: []string{"CAP_FLY"}}, false, all, quiet); errdefs.KindOf(err) != errdefs.KindInvalidArgument {
		t.Errorf("unknown capability: %v", err)
	}
	// The default list is configurable.
	got, err := ComputeCapabilities([]string{"CHOWN"}, Capabilities{}, false, all, quiet)
	if err != nil || !slices.Equal(got, []string{"CAP_CHOWN"}) {
		t.Errorf("custom defaults: %v, %v", got, err)
	}
}

func TestDefaultCapabilitiesExact(t *testing.T) {
	want := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}
	if !slices.Equal(DefaultCapabilities, want) {
		t.Errorf("DefaultCapabilities = %v", DefaultCapabilities)
	}
}

func TestCapsFromMask(t *testing.T) {
	// This host's root: every capability but CAP_SYS_RESOURCE (bit 24).
	got := capsFromMask(0x000001fffeffffff)
	if slices.Contains(got, "CAP_SYS_RESOURCE") || !slices.Contains(got, "CAP_SYS_ADMIN") || len(got) != len(capNames)-1 {
		t.Errorf("capsFromMask: %v", got)
	}
	own, err := BoundingSet()
	if err != nil || len(own) == 0 {
		t.Errorf("BoundingSet: %v, %v", own, err)
	}
}

func TestClampOOMScoreAdj(t *testing.T) {
	for _, tc := range []struct{ req, min, want int }{
		{-997, 0, 0}, {-997, -1000, -997}, {1000, 0, 1000}, {1500, 0, 1000}, {-2000, -1000, -1000}, {500, 200, 500}, {100, 200, 200},
	} {
		if got := ClampOOMScoreAdj(tc.req, tc.min, quiet); got != tc.want {
			t.Errorf("Clamp(%d, min %d) = %d, want %d", tc.req, tc.min, got, tc.want)
		}
	}
	min, err := MinOOMScoreAdj()
	if err != nil || min < -1000 || min > 1000 {
		t.Errorf("MinOOMScoreAdj = %d, %v", min, err)
	}
}

func TestValidateSysctls(t *testing.T) {
	got, err := ValidateSysctls(map[string]string{
		"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000", "kernel.msgmax": "10", "kernel.sem": "1 2 3 4",
		"fs.mqueue.msg_max": "20", "net/ipv4/conf/eth0.100/rp_filter": "0",
	}, Namespaces{})
	if err != nil {
		t.Fatal(err)
	}
	if got["net.ipv4.conf.eth0/100.rp_filter"] != "0" || got["kernel.sem"] != "1 2 3 4" || len(got) != 6 {
		t.Errorf("normalized: %v", got)
	}
	for _, tc := range []struct {
		key string
		ns  Namespaces
	}{
		{"kernel.pid_max", Namespaces{}},
		{"vm.swappiness", Namespaces{}},
		{"kernel.domainname", Namespaces{}},
		{"net.ipv4.ip_forward", Namespaces{HostNetwork: true}},
		{"kernel.shmmax", Namespaces{HostIPC: true}},
		{"net..x", Namespaces{}},
	} {
		_, err := ValidateSysctls(map[string]string{tc.key: "1"}, tc.ns)
		if errdefs.KindOf(err) != errdefs.KindInvalidArgument {
			t.Errorf("%s %+v: %v, want InvalidArgument", tc.key, tc.ns, err)
		}
	}
}
