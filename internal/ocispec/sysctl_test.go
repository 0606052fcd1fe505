package ocispec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floe-cri/floe/internal/errdefs"
)

func TestValidateSysctlsNamesTheKeyAndRefusesBadValues(t *testing.T) {
	for key, value := range map[string]string{
		"net.ipv4.ip_unprivileged_port_start": "1\n0",
		"net.ipv4.tcp_syncookies":             "1\x000",
		"kernel.shmmax":                       strings.Repeat("9", maxSysctlValue+1),
		"net/ipv4/../../kernel/x":             "1",
		"net.ipv4.conf./.rp_filter":           "1",
		"net.ipv4.a b":                        "1",
		"net":                                 "1",
	} {
		_, err := ValidateSysctls(map[string]string{key: value}, Namespaces{})
		want := `linux.sysctls["` + key + `"]`
		if errdefs.KindOf(err) != errdefs.KindInvalidArgument || !strings.Contains(err.Error(), want) {
			t.Errorf("%q=%q: %v, want InvalidArgument naming %s", key, value, err, want)
		}
	}
	if _, err := ValidateSysctls(map[string]string{"net.ipv4.ip_local_port_range": "1024\t65000", "kernel.sem": "250 32000 100 128"}, Namespaces{}); err != nil {
		t.Errorf("spaces and tabs: %v", err)
	}
}

func TestCheckSysctlsKnown(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"net/ipv4/ip_forward", "net/ipv4/conf/default/rp_filter", "net/ipv4/conf/eth0.100/rp_filter", "kernel/shmmax"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	known := map[string]string{
		"net.ipv4.ip_forward": "1", "kernel.shmmax": "1",
		"net.ipv4.conf.eth0.rp_filter":     "1", // no eth0 on the host: the default device has it
		"net/ipv4/conf/eth0.100/rp_filter": "1",
	}
	if err := CheckSysctlsKnown(known, root); err != nil {
		t.Errorf("known sysctls: %v", err)
	}
	for _, key := range []string{"net.ipv4.nonexistent", "net.ipv4", "net.ipv4.conf.eth0.nonexistent", "kernel.shmall"} {
		err := CheckSysctlsKnown(map[string]string{key: "1"}, root)
		if errdefs.KindOf(err) != errdefs.KindInvalidArgument || !strings.Contains(err.Error(), `linux.sysctls["`+key+`"]`) {
			t.Errorf("%s: %v, want InvalidArgument naming it", key, err)
		}
	}
}
