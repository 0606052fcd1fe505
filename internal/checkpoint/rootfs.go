package checkpoint

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const syscallNoFollow = unix.O_NOFOLLOW

// openInRoot opens rel below the directory root refers to, resolving
// every symlink as if root were "/" (RESOLVE_IN_ROOT): a container's
// rootfs is full of absolute symlinks that must not reach the host.
func openInRoot(root *os.File, rel string, flags int) (*os.File, error) {
	fd, err := unix.Openat2(int(root.Fd()), rel, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: rel, Err: err}
	}
	return os.NewFile(uintptr(fd), rel), nil
}

// WriteRootfsDiff writes the files a container added or changed
// (changed, paths in its rootfs) as a tar at dst, with their owners,
// modes and times, and the deleted paths as a JSON list at deletedDst.
// Sockets are left out (they cannot be archived and criu recreates the
// bound ones itself).
func WriteRootfsDiff(rootfs string, changed, deleted []string, dst, deletedDst string) error {
	root, err := os.Open(rootfs)
	if err != nil {
		return fmt.Errorf("rootfs diff: %w", err)
	}
	defer root.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("rootfs diff: %w", err)
	}
	defer out.Close()
	tw := tar.NewWriter(out)
	sort.Strings(changed)
	for _, p := range changed {
		if err := addRootfsEntry(tw, root, p); err != nil {
			return fmt.Errorf("rootfs diff: %s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("rootfs diff: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("rootfs diff: %w", err)
	}
	sort.Strings(deleted)
	data, err := json.Marshal(deleted)
	if err != nil {
		return err
	}
	return os.WriteFile(deletedDst, data, 0o600)
}

func addRootfsEntry(tw *tar.Writer, root *os.File, p string) error {
	rel := strings.TrimPrefix(path.Clean("/"+p), "/")
	if rel == "" {
		return nil
	}
	f, err := openInRoot(root, rel, unix.O_PATH|unix.O_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil // gone since the layer was listed
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	h := &tar.Header{
		Name: rel, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()), Format: tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		h.Typeflag, h.Name = tar.TypeDir, rel+"/"
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(int(f.Fd()), "", buf)
		if err != nil {
			return err
		}
		h.Typeflag, h.Linkname = tar.TypeSymlink, string(buf[:n])
	case unix.S_IFREG:
		h.Typeflag, h.Size = tar.TypeReg, st.Size
	case unix.S_IFCHR, unix.S_IFBLK:
		h.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor, h.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		h.Typeflag = tar.TypeFifo
	default:
		return nil // sockets
	}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeReg {
		return nil
	}
	// Reopened for reading through the O_PATH descriptor, so it is the
	// very file that was inspected. A file still growing is cut at the
	// size seen.
	r, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := io.Copy(tw, io.LimitReader(r, st.Size))
	if err == nil && n < st.Size {
		err = fmt.Errorf("file shrank from %d to %d bytes while archived", st.Size, n)
	}
	return err
}

// ApplyRootfsDiff replays a checkpoint's rootfs changes on a new
// container's rootfs before it runs: the deleted paths are removed, then
// rootfs-diff.tar is unpacked over it. Everything is resolved inside
// rootfs.
func ApplyRootfsDiff(rootfs, diffTar, deletedList string) error {
	root, err := os.Open(rootfs)
	if err != nil {
		return fmt.Errorf("apply rootfs diff: %w", err)
	}
	defer root.Close()
	if data, err := readSmall(deletedList); err == nil {
		var deleted []string
		if err := json.Unmarshal(data, &deleted); err != nil {
			return fmt.Errorf("apply rootfs diff: %s: %w", DeletedFile, err)
		}
		for _, p := range deleted {
			if err := removeInRoot(root, p); err != nil {
				return fmt.Errorf("apply rootfs diff: remove %s: %w", p, err)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("apply rootfs diff: %w", err)
	}
	f, err := os.Open(diffTar)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("apply rootfs diff: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var dirs []*tar.Header
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("apply rootfs diff: %w", err)
		}
		if err := applyEntry(root, h, tr); err != nil {
			return fmt.Errorf("apply rootfs diff: %s: %w", h.Name, err)
		}
		if h.Typeflag == tar.TypeDir {
			dirs = append(dirs, h)
		}
	}
	// Directory times last: adding their entries changed them.
	for _, h := range dirs {
		if err := setTimes(root, h); err != nil {
			return fmt.Errorf("apply rootfs diff: %s: %w", h.Name, err)
		}
	}
	return nil
}

// parentInRoot opens the directory holding rel (creating none) and
// returns it with rel's last element.
func parentInRoot(root *os.File, p string) (*os.File, string, error) {
	rel := strings.TrimPrefix(path.Clean("/"+p), "/")
	if rel == "" {
		return nil, "", errors.New("the rootfs itself")
	}
	dir, base := path.Split(rel)
	if dir == "" {
		dir = "."
	}
	parent, err := openInRoot(root, dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, "", err
	}
	return parent, base, nil
}

func removeInRoot(root *os.File, p string) error {
	parent, base, err := parentInRoot(root, p)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer parent.Close()
	return removeAllAt(int(parent.Fd()), base)
}

// removeAllAt removes name below the directory dirfd, recursively,
// without following symlinks.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = removeAllAt(fd, n); err != nil {
				break
			}
		}
	}
	d.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

func applyEntry(root *os.File, h *tar.Header, r io.Reader) error {
	parent, base, err := parentInRoot(root, h.Name)
	if err != nil {
		return err
	}
	defer parent.Close()
	pfd := int(parent.Fd())
	mode := uint32(h.Mode & 0o7777)
	if h.Typeflag == tar.TypeDir {
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			// Keep the directory (and what the image has in it).
		} else {
			if err == nil {
				if err := removeAllAt(pfd, base); err != nil {
					return err
				}
			}
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return err
			}
		}
	} else {
		if err := removeAllAt(pfd, base); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeReg:
			fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
			if err != nil {
				return err
			}
			f := os.NewFile(uintptr(fd), base)
			_, err = io.Copy(f, r)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := unix.Symlinkat(h.Linkname, pfd, base); err != nil {
				return err
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			kind := uint32(unix.S_IFIFO)
			if h.Typeflag == tar.TypeChar {
				kind = unix.S_IFCHR
			} else if h.Typeflag == tar.TypeBlock {
				kind = unix.S_IFBLK
			}
			dev := unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
			if err := unix.Mknodat(pfd, base, kind|0o600, int(dev)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unsupported entry type %q", h.Typeflag)
		}
	}
	if err := unix.Fchownat(pfd, base, h.Uid, h.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeSymlink {
		if err := unix.Fchmodat(pfd, base, mode, 0); err != nil {
			return err
		}
	}
	if h.Typeflag != tar.TypeDir {
		return setTimes(root, h)
	}
	return nil
}

func setTimes(root *os.File, h *tar.Header) error {
	parent, base, err := parentInRoot(root, h.Name)
	if err != nil {
		return err
	}
	defer parent.Close()
	ts := unix.NsecToTimespec(h.ModTime.UnixNano())
	return unix.UtimesNanoAt(int(parent.Fd()), base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}
