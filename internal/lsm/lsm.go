// Package lsm tells which Linux security modules floe can confine
// containers with on this host, AppArmor and SELinux, found the way runc
// finds them, and turns what the kubelet asks for into AppArmor profile
// names and SELinux labels. floe loads no AppArmor profile and writes no
// SELinux policy of its own: it puts into the OCI spec what the host
// already has, and the server refuses requests the host cannot honour.
package lsm

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/opencontainers/selinux/go-selinux"
	"github.com/opencontainers/selinux/go-selinux/label"
)

// Host is what the host enforces, with the lookups that depend on it.
// Detect fills every field; tests build one by hand to pretend the host
// has a module.
type Host struct {
	// AppArmor is whether the kernel has AppArmor enabled and its
	// securityfs interface mounted, so runc can switch profiles.
	AppArmor bool `json:"appArmor"`
	// AppArmorStatus says "enabled" or why not.
	AppArmorStatus string `json:"appArmorStatus"`
	// SELinux is whether SELinux is enabled (enforcing or permissive).
	SELinux bool `json:"seLinux"`
	// SELinuxStatus is "enforcing", "permissive" or "disabled".
	SELinuxStatus string `json:"seLinuxStatus"`

	// ProfileLoaded reports whether AppArmor has a profile of this name
	// loaded.
	ProfileLoaded func(name string) (bool, error) `json:"-"`
	// Labels gives the process and mount labels for SELinux options,
	// filling what they leave out from the policy's container context.
	Labels func(o SELinuxOptions) (process, mount string, err error) `json:"-"`
}

// SELinuxOptions are the parts of a label the kubelet may send.
type SELinuxOptions struct {
	User, Role, Type, Level string
}

// Empty is whether no part is set.
func (o SELinuxOptions) Empty() bool { return o == SELinuxOptions{} }

// String is the label as user:role:type:level, with the parts not asked
// for left empty.
func (o SELinuxOptions) String() string {
	return strings.Join([]string{o.User, o.Role, o.Type, o.Level}, ":")
}

const (
	apparmorParam = "/sys/module/apparmor/parameters/enabled"
	apparmorFS    = "/sys/kernel/security/apparmor"
)

// Detect looks at the running host.
func Detect() Host {
	h := Host{ProfileLoaded: func(name string) (bool, error) { return profileLoaded(apparmorFS, name) }, Labels: initLabels}
	h.AppArmor, h.AppArmorStatus = detectAppArmor("/")
	h.SELinux = selinux.GetEnabled()
	h.SELinuxStatus = "disabled"
	if h.SELinux {
		switch selinux.EnforceMode() {
		case selinux.Enforcing:
			h.SELinuxStatus = "enforcing"
		case selinux.Permissive:
			h.SELinuxStatus = "permissive"
		}
	}
	return h
}

// detectAppArmor checks, under root, what runc's apparmor.IsEnabled
// checks: the securityfs directory exists and the module's enabled
// parameter says Y.
func detectAppArmor(root string) (bool, string) {
	if _, err := os.Stat(filepath.Join(root, apparmorFS)); err != nil {
		if _, perr := os.Stat(filepath.Join(root, apparmorParam)); perr != nil {
			return false, "not enabled (no AppArmor module)"
		}
		return false, "not enabled (" + apparmorFS + " is missing: securityfs not mounted?)"
	}
	b, err := os.ReadFile(filepath.Join(root, apparmorParam))
	if err != nil {
		return false, fmt.Sprintf("not enabled (%v)", err)
	}
	if !strings.HasPrefix(string(b), "Y") {
		return false, "not enabled (" + apparmorParam + " is " + strings.TrimSpace(string(b)) + ")"
	}
	return true, "enabled"
}

// profileLoaded reads the profiles file of AppArmor's securityfs
// directory dir: one "name (mode)" a line.
func profileLoaded(dir, name string) (bool, error) {
	f, err := os.Open(filepath.Join(dir, "profiles"))
	if err != nil {
		return false, fmt.Errorf("list loaded AppArmor profiles: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.LastIndex(line, " ("); i >= 0 {
			line = line[:i]
		}
		if line == name {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("list loaded AppArmor profiles: %w", err)
	}
	return false, nil
}

// initLabels asks go-selinux for the labels, as containerd and CRI-O do:
// the parts given replace those of the policy's default container
// context, and without a level a unique MCS level is picked.
func initLabels(o SELinuxOptions) (string, string, error) {
	var opts []string
	for _, kv := range [][2]string{{"user", o.User}, {"role", o.Role}, {"type", o.Type}, {"level", o.Level}} {
		if kv[1] != "" {
			opts = append(opts, kv[0]+":"+kv[1])
		}
	}
	p, m, err := label.InitLabels(opts)
	if err != nil {
		return "", "", fmt.Errorf("SELinux label from %v: %w", opts, err)
	}
	return p, m, nil
}

// Enforced names the modules the host enforces.
func (h Host) Enforced() []string {
	var out []string
	if h.AppArmor {
		out = append(out, "AppArmor")
	}
	if h.SELinux {
		out = append(out, "SELinux ("+h.SELinuxStatus+")")
	}
	return out
}

// String is the one-line summary `floe status` shows, for example
// "none (AppArmor: not enabled, SELinux: disabled)".
func (h Host) String() string {
	what := "none"
	if e := h.Enforced(); len(e) > 0 {
		what = strings.Join(e, ", ")
	}
	return fmt.Sprintf("%s (AppArmor: %s, SELinux: %s)", what, h.AppArmorStatus, h.SELinuxStatus)
}

// Relabel gives path and everything below it the SELinux file label, so
// a container running with the matching process label can use it. It does
// nothing where SELinux is off or label is empty, and a filesystem without
// labels (ENOTSUP) is left as it is, as containerd does.
func Relabel(path, fileLabel string) error {
	err := label.Relabel(path, fileLabel, false)
	if err != nil && !errors.Is(err, syscall.ENOTSUP) {
		return fmt.Errorf("relabel %s with %s: %w", path, fileLabel, err)
	}
	return nil
}

// ReserveLabel records that a container runs with an SELinux process
// label, so that labels picked later get other MCS levels (for the
// containers floe finds again after a restart).
func ReserveLabel(processLabel string) {
	selinux.ReserveLabel(processLabel)
}

// ReleaseLabel frees the MCS level of a removed container's process
// label (or of one whose creation failed) for reuse.
func ReleaseLabel(processLabel string) {
	selinux.ReleaseLabel(processLabel)
}
