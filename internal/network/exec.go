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
	// Linux sends the parent-death signal when the *thread* that forked
	// the child exits, and floe ends OS threads on purpose (namespace
	// pinning, netns dials): fork from a thread that lives as long as floe.
	if err := startOnStableThread(cmd); err != nil {
		return nil, pluginError(stdout.Bytes(), stderr.Bytes(), err)
	}
	if err := cmd.Wait(); err != nil {
		return nil, pluginError(stdout.Bytes(), stderr.Bytes(), err)
	}
	return stdout.Bytes(), nil
}

// startRequests are served by the one spawner goroutine.
var (
	spawnOnce     sync.Once
	startRequests chan startRequest
)

type startRequest struct {
	cmd  *exec.Cmd
	done chan error
}

// startOnStableThread runs cmd.Start on a goroutine locked to its OS thread
// for the life of the process. The goroutine has no stop on purpose: if
// its thread ever exited, every plugin it started would get SIGKILL. It
// is started on first use and idles on a channel.
func startOnStableThread(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		startRequests = make(chan startRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must outlive every child
			for req := range startRequests {
				req.done <- req.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	startRequests <- startRequest{cmd: cmd, done: done}
	return <-done
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
