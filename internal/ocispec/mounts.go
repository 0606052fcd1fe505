package ocispec

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/floe-cri/floe/internal/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// baseMounts are the kernel filesystems every container gets. sysfs can
// only be mounted by the owner of the network namespace, so a container on
// the host network gets a read-only bind of the host's /sys instead, as
// CRI-O does.
func baseMounts(c *Container) []specs.Mount {
	sysOpts := []string{"nosuid", "noexec", "nodev", "ro"}
	cgroupOpts := []string{"nosuid", "noexec", "nodev", "relatime", "ro"}
	if c.Privileged {
		sysOpts[3], cgroupOpts[4] = "rw", "rw"
	}
	sys := specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sysOpts}
	if c.Namespaces.HostNetwork {
		sys = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", sysOpts[3]}}
	}
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		sys,
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: cgroupOpts},
	}
	if c.PodFiles.Shm != "" {
		ms = append(ms, specs.Mount{Destination: "/dev/shm", Type: "bind", Source: c.PodFiles.Shm, Options: []string{"rbind", "nosuid", "noexec", "nodev"}})
	} else {
		ms = append(ms, specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}})
	}
	podFile := func(dest, src string) {
		if src == "" {
			return
		}
		mode := "rw"
		if c.ReadonlyRootfs {
			mode = "ro"
		}
		ms = append(ms, specs.Mount{Destination: dest, Type: "bind", Source: src, Options: []string{"bind", "rprivate", "nosuid", "nodev", "noexec", mode}})
	}
	podFile("/etc/resolv.conf", c.PodFiles.ResolvConf)
	podFile("/etc/hosts", c.PodFiles.Hosts)
	podFile("/etc/hostname", c.PodFiles.Hostname)
	if c.TerminationMessagePath != "" && c.TerminationMessageHostPath != "" {
		ms = append(ms, specs.Mount{Destination: c.TerminationMessagePath, Type: "bind", Source: c.TerminationMessageHostPath, Options: []string{"bind", "rprivate", "rw"}})
	}
	return ms
}

// userMounts turns the requested bind mounts into OCI mounts, checking that
// each host path exists and preparing the host side of shared propagation.
// It returns the rootfs propagation the mounts need.
// MountOptionsAllowed are the bind mount flags a CRI mount_options entry
// may carry: per-mount flags runc applies with a remount. Anything else
// (a propagation, "rw" on a read-only mount, data options) would fight the
// fields that already say it, or be ignored.
var MountOptionsAllowed = []string{"nosuid", "suid", "nodev", "dev", "noexec", "exec", "noatime", "atime", "nodiratime", "diratime", "relatime", "norelatime", "strictatime", "nostrictatime"}

func userMounts(c *Container, log *slog.Logger) ([]specs.Mount, string, error) {
	var out []specs.Mount
	rootfsPropagation := ""
	for i, m := range c.Mounts {
		field := fmt.Sprintf("mounts[%d]", i)
		if !filepath.IsAbs(m.ContainerPath) {
			return nil, "", errdefs.InvalidArgument(field+".container_path", "%q is not an absolute path", m.ContainerPath)
		}
		if !filepath.IsAbs(m.HostPath) {
			return nil, "", errdefs.InvalidArgument(field+".host_path", "%q is not an absolute path", m.HostPath)
		}
		if _, err := os.Stat(m.HostPath); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, "", errdefs.InvalidArgument(field+".host_path", "host path %q does not exist", m.HostPath)
			}
			return nil, "", errdefs.InvalidArgument(field+".host_path", "host path %q: %v", m.HostPath, err)
		}
		if m.RecursiveReadonly {
			if !m.Readonly {
				return nil, "", errdefs.InvalidArgument(field+".recursive_read_only", "needs readonly to be set too")
			}
			if m.Propagation != "" && m.Propagation != PropagationPrivate {
				return nil, "", errdefs.InvalidArgument(field+".recursive_read_only", "needs private propagation, not %s", m.Propagation)
			}
		}
		opts := []string{"rbind"}
		switch m.Propagation {
		case "", PropagationPrivate:
			opts = append(opts, "rprivate")
		case PropagationHostToCt:
			if err := EnsureSharedMount(m.HostPath, log); err != nil {
				return nil, "", fmt.Errorf("%s: %w", field, err)
			}
			opts = append(opts, "rslave")
			if rootfsPropagation == "" {
				rootfsPropagation = "rslave"
			}
		case PropagationBidir:
			if err := EnsureSharedMount(m.HostPath, log); err != nil {
				return nil, "", fmt.Errorf("%s: %w", field, err)
			}
			opts = append(opts, "rshared")
			rootfsPropagation = "rshared"
		default:
			return nil, "", errdefs.InvalidArgument(field+".propagation", "unknown propagation %q", m.Propagation)
		}
		if m.Readonly {
			opts = append(opts, "ro")
			if m.RecursiveReadonly {
				opts = append(opts, "rro")
			}
		} else {
			opts = append(opts, "rw")
		}
		for j, o := range m.Options {
			if !slices.Contains(MountOptionsAllowed, o) {
				return nil, "", errdefs.InvalidArgument(fmt.Sprintf("%s.mount_options[%d]", field, j), "%q is not one of %v", o, MountOptionsAllowed)
			}
			opts = append(opts, o)
		}
		out = append(out, specs.Mount{Destination: filepath.Clean(m.ContainerPath), Type: "bind", Source: m.HostPath, Options: opts})
	}
	return out, rootfsPropagation, nil
}

// mergeMounts puts requested mounts over the defaults: a default whose
// destination a request also uses is dropped (the kubelet, for one, sends
// its own /etc/hosts), and mounts are ordered parents first so a mount is
// never hidden by one on a parent directory.
func mergeMounts(base, user []specs.Mount) []specs.Mount {
	taken := map[string]bool{}
	for _, m := range user {
		taken[m.Destination] = true
	}
	var out []specs.Mount
	for _, m := range base {
		if !taken[m.Destination] {
			out = append(out, m)
		}
	}
	out = append(out, user...)
	sort.SliceStable(out, func(i, j int) bool { return depth(out[i].Destination) < depth(out[j].Destination) })
	return out
}

func depth(p string) int {
	p = filepath.Clean(p)
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// EnsureSharedMount makes the host mount that holds path a shared mount if
// it is not one already, so rshared (and rslave) bind mounts of path see
// mounts made on the host side later. Docker and the kubelet's mount
// propagation assume the same.
func EnsureSharedMount(path string, log *slog.Logger) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", path, err)
	}
	mp, shared, err := mountOf(real)
	if err != nil {
		return err
	}
	if shared {
		return nil
	}
	if err := unix.Mount("", mp, "", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make mount %s shared for %s: %w", mp, path, err)
	}
	log.Info("made host mount shared for mount propagation", "mount", mp, "path", path)
	return nil
}

// mountOf finds, in /proc/self/mountinfo, the mount point holding path and
// whether it is shared. The last matching line wins, since a later mount on
// the same point hides earlier ones.
func mountOf(path string) (string, bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false, fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	best, bestShared := "", false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if !(path == mp || mp == "/" || strings.HasPrefix(path, mp+"/")) {
			continue
		}
		if len(mp) < len(best) {
			continue
		}
		shared := false
		for _, opt := range fields[6:] {
			if opt == "-" {
				break
			}
			if strings.HasPrefix(opt, "shared:") {
				shared = true
			}
		}
		best, bestShared = mp, shared
	}
	if err := sc.Err(); err != nil {
		return "", false, fmt.Errorf("read mountinfo: %w", err)
	}
	if best == "" {
		return "", false, fmt.Errorf("no mount holds %s", path)
	}
	return best, bestShared, nil
}

// unescapeMountinfo undoes the octal escapes (\040 for space, ...) the
// kernel uses in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v := 0
			ok := true
			for _, d := range s[i+1 : i+4] {
				if d < '0' || d > '7' {
					ok = false
					break
				}
				v = v*8 + int(d-'0')
			}
			if ok {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// deviceFor describes the host device node at hostPath for the container.
func deviceFor(hostPath, containerPath string) (*specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(hostPath, &st); err != nil {
		return nil, err
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return nil, fmt.Errorf("%s is not a device node", hostPath)
	}
	mode := fs.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return &specs.LinuxDevice{
		Path:     containerPath,
		Type:     typ,
		Major:    int64(unix.Major(uint64(st.Rdev))),
		Minor:    int64(unix.Minor(uint64(st.Rdev))),
		FileMode: &mode,
		UID:      &uid,
		GID:      &gid,
	}, nil
}

// devices builds the device nodes and the device cgroup rules. The cgroup
// starts from deny-all; runc adds its standard devices (null, zero, full,
// random, urandom, tty, ptmx, pts) by itself. Privileged containers get
// every host device and an allow-all rule.
func devices(c *Container) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	if c.Privileged {
		devs := hostDevices()
		return devs, []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}, nil
	}
	var devs []specs.LinuxDevice
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	for i, d := range c.Devices {
		field := fmt.Sprintf("devices[%d]", i)
		perms := d.Permissions
		if perms == "" {
			perms = "rwm"
		}
		if strings.Trim(perms, "rwm") != "" {
			return nil, nil, errdefs.InvalidArgument(field+".permissions", "%q: only r, w and m are allowed", d.Permissions)
		}
		cp := d.ContainerPath
		if cp == "" {
			cp = d.HostPath
		}
		dev, err := deviceFor(d.HostPath, cp)
		if err != nil {
			return nil, nil, errdefs.InvalidArgument(field+".host_path", "%v", err)
		}
		devs = append(devs, *dev)
		major, minor := dev.Major, dev.Minor
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: perms})
	}
	return devs, rules, nil
}

// hostDevices lists the host's device nodes under /dev, skipping the
// pseudo-filesystems every container gets its own of.
func hostDevices() []specs.LinuxDevice {
	var out []specs.LinuxDevice
	skip := map[string]bool{"/dev/pts": true, "/dev/shm": true, "/dev/mqueue": true, "/dev/fd": true, "/dev/console": true, "/dev/ptmx": true}
	_ = filepath.WalkDir("/dev", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if skip[p] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&fs.ModeDevice == 0 {
			return nil
		}
		if dev, err := deviceFor(p, p); err == nil {
			out = append(out, *dev)
		}
		return nil
	})
	return out
}
