package network

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
)

// pluginExec runs CNI plugins like libcni's default executor, but with the
// parent-death signal set: if floe is killed during ADD, the plugin dies
// with it instead of finishing the ADD behind the back of the restarted
// daemon, whose recovery DEL must be the last word.
type pluginExec struct {
	version.PluginDecoder
}

func (e *pluginExec) ExecPlugin(ctx context.Context, pluginPath string, stdinData []byte, environ []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, pluginPath)
	cmd.Env = environ
	cmd.Stdin = bytes.NewReader(stdinData)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		return nil, pluginError(stdout.Bytes(), stderr.Bytes(), err)
	}
	return stdout.Bytes(), nil
}

// pluginError prefers the CNI error object the plugin printed.
func pluginError(stdout, stderr []byte, runErr error) error {
	var cniErr struct {
		Code    uint   `json:"code"`
		Msg     string `json:"msg"`
		Details string `json:"details"`
	}
	if json.Unmarshal(stdout, &cniErr) == nil && cniErr.Msg != "" {
		if cniErr.Details != "" {
			return fmt.Errorf("%s: %s", cniErr.Msg, cniErr.Details)
		}
		return fmt.Errorf("%s", cniErr.Msg)
	}
	if msg := strings.TrimSpace(string(stderr)); msg != "" {
		return fmt.Errorf("%w: %s", runErr, msg)
	}
	return runErr
}

func (e *pluginExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}
