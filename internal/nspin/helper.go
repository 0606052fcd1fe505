package nspin

import (
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// HelperMain is the body of the re-executed helper. It runs already inside
// the new namespaces, so every thread of this process shares them and
// /proc/self/ns/* names them. It exits the process.
func HelperMain(args []string) {
	if err := runHelper(args); err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runHelper(args []string) error {
	targets := map[string]string{}
	hostname := ""
	for _, a := range args {
		key, val, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("helper: bad argument %q", a)
		}
		switch key {
		case "net", "ipc", "uts":
			targets[key] = val
		case "hostname":
			hostname = val
		default:
			return fmt.Errorf("helper: unknown argument %q", key)
		}
	}
	if hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", hostname, err)
		}
	}
	if _, ok := targets["net"]; ok {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find loopback: %w", err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("bring loopback up: %w", err)
		}
	}
	for kind, target := range targets {
		if err := unix.Mount("/proc/self/ns/"+kind, target, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pin %s namespace at %s: %w", kind, target, err)
		}
	}
	return nil
}
