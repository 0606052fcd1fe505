package stats

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ProcessFiles is what a cgroup's processes hold open.
type ProcessFiles struct {
	FileDescriptors uint64
	Sockets         uint64
}

// ReadProcessFiles counts the open descriptors and sockets of pids under
// procRoot (/proc). A process that exits meanwhile is skipped: the counts
// are a snapshot, as cAdvisor's are.
func ReadProcessFiles(procRoot string, pids []int) ProcessFiles {
	var out ProcessFiles
	for _, pid := range pids {
		dir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		out.FileDescriptors += uint64(len(entries))
		for _, e := range entries {
			if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(target, "socket:") {
				out.Sockets++
			}
		}
	}
	return out
}

// SoftOpenFilesLimit is the soft "Max open files" of a process from
// procRoot/PID/limits; ok is false when it is unlimited or unreadable.
func SoftOpenFilesLimit(procRoot string, pid int) (v uint64, ok bool, err error) {
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "limits"))
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, found := strings.CutPrefix(sc.Text(), "Max open files")
		if !found {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0, false, fmt.Errorf("pid %d: malformed limits line %q", pid, sc.Text())
		}
		if fields[0] == "unlimited" {
			return 0, false, nil
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("pid %d: parse open files limit: %w", pid, err)
		}
		return n, true, nil
	}
	if err := sc.Err(); err != nil {
		return 0, false, err
	}
	return 0, false, fmt.Errorf("pid %d: no open files limit", pid)
}

// Filesystem is the capacity of the filesystem holding a path.
type Filesystem struct {
	Device      string // /dev/NAME of the block device, or MAJ:MIN
	LimitBytes  uint64
	InodesTotal uint64
	InodesFree  uint64
}

// ReadFilesystem statfs()es path and names its device from sysRoot
// (/sys) the way cAdvisor labels filesystem series.
func ReadFilesystem(sysRoot, path string) (*Filesystem, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	return &Filesystem{
		Device:      DeviceName(sysRoot, uint64(unix.Major(st.Dev)), uint64(unix.Minor(st.Dev))),
		LimitBytes:  fs.Blocks * uint64(fs.Bsize),
		InodesTotal: fs.Files,
		InodesFree:  fs.Ffree,
	}, nil
}

// DeviceName is "/dev/" + the DEVNAME the kernel gives a block device in
// sysRoot/dev/block/MAJ:MIN/uevent, or "MAJ:MIN" when it has none (an
// anonymous device, or a device that went away).
func DeviceName(sysRoot string, major, minor uint64) string {
	id := fmt.Sprintf("%d:%d", major, minor)
	b, err := os.ReadFile(filepath.Join(sysRoot, "dev", "block", id, "uevent"))
	if err != nil {
		return id
	}
	for _, line := range strings.Split(string(b), "\n") {
		if name, ok := strings.CutPrefix(line, "DEVNAME="); ok && name != "" {
			return "/dev/" + name
		}
	}
	return id
}
