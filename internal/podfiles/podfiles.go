// Package podfiles prepares the per-pod files containers mount later:
// /etc/resolv.conf from the pod's DNSConfig, /etc/hosts, /etc/hostname and a
// /dev/shm tmpfs of a configured size.
package podfiles

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// DNS is the pod's resolver configuration.
type DNS struct {
	Servers  []string
	Searches []string
	Options  []string
}

// Paths are the files of one pod under its run directory.
type Paths struct {
	Dir        string
	ResolvConf string
	Hosts      string
	Hostname   string
	Shm        string
}

// PathsFor returns where the files of a pod live under dir.
func PathsFor(dir string) Paths {
	return Paths{
		Dir:        dir,
		ResolvConf: filepath.Join(dir, "resolv.conf"),
		Hosts:      filepath.Join(dir, "hosts"),
		Hostname:   filepath.Join(dir, "hostname"),
		Shm:        filepath.Join(dir, "shm"),
	}
}

// ValidateDNS checks what the kubelet sent before anything is created.
func ValidateDNS(d DNS) error {
	for _, s := range d.Servers {
		if net.ParseIP(s) == nil {
			return fmt.Errorf("config.dns_config.servers: %q is not an IP address", s)
		}
	}
	for _, s := range append(append([]string{}, d.Searches...), d.Options...) {
		if s == "" || strings.ContainsAny(s, " \t\n") {
			return fmt.Errorf("config.dns_config: %q is not a valid search domain or option", s)
		}
	}
	return nil
}

// ResolvConf renders resolv.conf. With no DNS config the host's file is
// used, as the kubelet expects for pods with dnsPolicy Default.
func ResolvConf(d DNS, hostResolvConf string) ([]byte, error) {
	if len(d.Servers) == 0 && len(d.Searches) == 0 && len(d.Options) == 0 {
		b, err := os.ReadFile(hostResolvConf)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return b, err
	}
	var sb strings.Builder
	if len(d.Searches) > 0 {
		sb.WriteString("search " + strings.Join(d.Searches, " ") + "\n")
	}
	for _, s := range d.Servers {
		sb.WriteString("nameserver " + s + "\n")
	}
	if len(d.Options) > 0 {
		sb.WriteString("options " + strings.Join(d.Options, " ") + "\n")
	}
	return []byte(sb.String()), nil
}

// Hosts renders /etc/hosts with loopback entries and the pod's own name.
// The pod IP is not known yet when it is written; the kubelet manages
// /etc/hosts for non-hostNetwork pods itself and mounts its own file.
func Hosts(hostname string) []byte {
	return []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n" +
		"127.0.1.1\t" + hostname + "\n")
}

// Write creates dir and the pod's files in it, and mounts the shm tmpfs.
// On error nothing is left behind.
func Write(p Paths, hostname string, resolv []byte, shmSize int64) (err error) {
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return fmt.Errorf("create pod dir: %w", err)
	}
	defer func() {
		if err != nil {
			Remove(p)
		}
	}()
	files := map[string][]byte{
		p.ResolvConf: resolv,
		p.Hosts:      Hosts(hostname),
		p.Hostname:   []byte(hostname + "\n"),
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := os.MkdirAll(p.Shm, 0o755); err != nil {
		return fmt.Errorf("create shm dir: %w", err)
	}
	opts := fmt.Sprintf("mode=1777,size=%d", shmSize)
	if err := unix.Mount("shm", p.Shm, "tmpfs", unix.MS_NOEXEC|unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount shm tmpfs at %s: %w", p.Shm, err)
	}
	return nil
}

// UnmountShm releases the shm tmpfs; it is idempotent.
func UnmountShm(p Paths) error {
	if err := unix.Unmount(p.Shm, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount shm %s: %w", p.Shm, err)
	}
	return nil
}

// Remove unmounts shm and deletes the pod directory; it is idempotent.
func Remove(p Paths) error {
	if err := UnmountShm(p); err != nil {
		return err
	}
	if err := os.RemoveAll(p.Dir); err != nil {
		return fmt.Errorf("remove pod dir %s: %w", p.Dir, err)
	}
	return nil
}
