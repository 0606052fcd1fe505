package network

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"sync"
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
	err := startOnKeptThread(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return nil, pluginError(stdout.Bytes(), stderr.Bytes(), err)
	}
	return stdout.Bytes(), nil
}

// The parent-death signal is sent when the OS thread that forked the child
// exits, not when the process does, and Go destroys a thread whenever a
// goroutine exits locked to it, as internal/nspin and the port-forward
// dialer do on purpose. A plugin forked from any thread could therefore be
// killed mid-ADD when another pod's namespaces were pinned on that thread
// later (the kubelet starting a dozen pods at once hit this). Plugins are
// forked from one thread kept for floe's whole life instead: its goroutine
// is started on first use and never returns, because its ending would
// itself fire the signal.
var (
	spawnOnce sync.Once
	spawnReqs = make(chan spawnReq)
)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func startOnKeptThread(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		go func() {
			runtime.LockOSThread() // never unlocked: see above
			for req := range spawnReqs {
				req.done <- req.cmd.Start()
			}
		}()
	})
	req := spawnReq{cmd: cmd, done: make(chan error, 1)}
	spawnReqs <- req
	return <-req.done
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
