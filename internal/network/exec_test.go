package network

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestPluginsSurviveThreadExits: floe ends OS threads on purpose (a
// goroutine that locked its thread and returns takes the thread with it).
// A plugin forked from such a thread used to receive its parent-death
// SIGKILL mid-ADD. Here many plugins run while threads keep ending.
func TestPluginsSurviveThreadExits(t *testing.T) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "slow-plugin")
	if err := os.WriteFile(plugin, []byte("#!/bin/sh\nsleep 0.3\necho '{}'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var churn sync.WaitGroup
	for i := 0; i < 4; i++ {
		churn.Add(1)
		go func() {
			defer churn.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				done := make(chan struct{})
				go func() {
					runtime.LockOSThread() // returning while locked ends the thread
					time.Sleep(time.Millisecond)
					close(done)
				}()
				<-done
			}
		}()
	}
	defer func() { close(stop); churn.Wait() }()

	e := &pluginExec{}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if _, err := e.ExecPlugin(ctx, plugin, nil, os.Environ()); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n < 3 {
			t.Errorf("plugin failed: %v", err)
		}
		n++
	}
	if n > 0 {
		t.Errorf("%d of 200 plugin runs failed while threads were ending", n)
	}
}
