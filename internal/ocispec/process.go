package ocispec

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/floe-cri/floe/internal/errdefs"
	"golang.org/x/sys/unix"
)

// defaultPath is set when neither the image nor the request sets PATH, as
// Docker and containerd do.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Argv merges the CRI command and args with the image's entrypoint and cmd
// the way the kubelet documents it (and Docker defines it):
//   - command set: it replaces the entrypoint, and the image cmd is dropped
//     (args, if any, follow the command);
//   - only args set: they replace the image cmd after the image entrypoint;
//   - neither: image entrypoint followed by image cmd.
func Argv(img ImageConfig, command, args []string) ([]string, error) {
	var entry, cmd []string
	if len(command) > 0 {
		entry, cmd = command, args
	} else {
		entry, cmd = img.Entrypoint, img.Cmd
		if len(args) > 0 {
			cmd = args
		}
	}
	argv := append(append([]string{}, entry...), cmd...)
	if len(argv) == 0 {
		return nil, errdefs.InvalidArgument("config.command", "no command given and the image defines neither entrypoint nor cmd")
	}
	return argv, nil
}

// MergeEnv returns the image env with the request's entries applied on top:
// a key present in both keeps its image position and takes the request's
// value; new keys follow in request order. Entries without "=" are kept as
// they are (runc passes them through).
func MergeEnv(image, request []string) []string {
	out := make([]string, 0, len(image)+len(request))
	index := map[string]int{}
	add := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			return
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	for _, kv := range image {
		add(kv)
	}
	for _, kv := range request {
		add(kv)
	}
	return out
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

// WorkingDir is the request's, else the image's, else "/".
func WorkingDir(img ImageConfig, request string) (string, error) {
	wd := request
	if wd == "" {
		wd = img.WorkingDir
	}
	if wd == "" {
		return "/", nil
	}
	if !strings.HasPrefix(wd, "/") {
		return "", errdefs.InvalidArgument("config.working_dir", "%q is not an absolute path", wd)
	}
	return wd, nil
}

// StopSignal parses an image's StopSignal ("SIGTERM", "TERM", "15");
// empty means SIGTERM.
func StopSignal(s string) (syscall.Signal, error) {
	if s == "" {
		return syscall.SIGTERM, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("stop signal %q out of range", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown stop signal %q", s)
}
