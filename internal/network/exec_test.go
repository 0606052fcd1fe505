package network

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// A plugin must survive Go destroying OS threads while it runs. The
// parent-death signal follows the thread that forked the child, and Go
// ends a thread whenever a goroutine exits locked to it, which floe does
// on purpose (namespace pinning, the port-forward dialer) while other
// pods' plugins run. Before plugins were forked from a thread that lives
// as long as floe, the kubelet starting a dozen pods at once saw
// `plugin type="loopback" failed (add): signal: killed`.
func TestPluginSurvivesDiscardedThreads(t *testing.T) {
	plugin := filepath.Join(t.TempDir(), "slow-plugin")
	if err := os.WriteFile(plugin, []byte("#!/bin/sh\nsleep 0.5\necho '{}'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := &pluginExec{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A few rounds: which thread a plugin is forked from is up to Go.
	for range 4 {
		const plugins = 16
		errs := make(chan error, plugins)
		for range plugins {
			go func() {
				_, err := e.ExecPlugin(ctx, plugin, []byte(`{"cniVersion":"1.0.0"}`), nil)
				errs <- err
			}()
		}
		// Meanwhile, goroutines exit locked to their threads, so Go destroys
		// those threads; any of them may be one a plugin was forked from.
		stop := time.After(500 * time.Millisecond)
	discard:
		for {
			select {
			case <-stop:
				break discard
			default:
			}
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					runtime.LockOSThread()
				}()
			}
			wg.Wait()
		}
		for range plugins {
			if err := <-errs; err != nil {
				if strings.Contains(err.Error(), "killed") {
					t.Fatalf("plugin killed when a thread was discarded: %v", err)
				}
				t.Fatal(err)
			}
		}
	}
}
