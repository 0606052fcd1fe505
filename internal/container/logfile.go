package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/floe-cri/floe/internal/errdefs"
)

// createLogFile makes the container's log file at rel inside the pod's log
// directory (creating missing directories on the way) without following a
// symlink or leaving the directory, so conmon, which opens the path as
// root, cannot be pointed at a file elsewhere on the node. The kubelet's
// own log handling assumes the same.
func createLogFile(logDir, rel string) error {
	if !filepath.IsLocal(rel) {
		return errdefs.InvalidArgument("config.log_path", "%q is not a path inside the pod's log directory", rel)
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("create pod log directory %s: %w", logDir, err)
	}
	dir, err := unix.Open(logDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open pod log directory %s: %w", logDir, err)
	}
	defer func() { unix.Close(dir) }()
	parts := strings.Split(filepath.Clean(rel), string(filepath.Separator))
	how := &unix.OpenHow{Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	for _, p := range parts[:len(parts)-1] {
		if err := unix.Mkdirat(dir, p, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create log directory %s in %s: %w", p, logDir, err)
		}
		how.Flags = unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC
		next, err := unix.Openat2(dir, p, how)
		if err != nil {
			return logPathError(rel, err)
		}
		unix.Close(dir)
		dir = next
	}
	how.Flags = unix.O_WRONLY | unix.O_CREAT | unix.O_APPEND | unix.O_NOFOLLOW | unix.O_CLOEXEC
	how.Mode = 0o640
	f, err := unix.Openat2(dir, parts[len(parts)-1], how)
	if err != nil {
		return logPathError(rel, err)
	}
	return unix.Close(f)
}

func logPathError(rel string, err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOTDIR) {
		return errdefs.InvalidArgument("config.log_path", "%q leads through a symlink or out of the pod's log directory: %v", rel, err)
	}
	return fmt.Errorf("create log file %s: %w", rel, err)
}
