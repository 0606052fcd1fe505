package integration

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/remotecommand"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/harness"
)

func TestAttachToShellWithStdin(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	ctx := harness.Ctx(t)
	cfg := e.config("shell", "sh")
	cfg.Stdin = true
	id := e.run(t, cfg)
	ttyCfg := e.config("term", "sh")
	ttyCfg.Stdin, ttyCfg.Tty = true, true
	ttyID := e.run(t, ttyCfg)

	for _, name := range []string{"spdy", "websocket", "websocket-v5"} {
		t.Run(name, func(t *testing.T) {
			resp, err := e.d.Runtime.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true})
			if err != nil {
				t.Fatalf("Attach: %v", err)
			}
			stdinR, stdinW := io.Pipe()
			var out, errOut syncBuffer
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- executors(t, resp.Url)[name].StreamWithContext(sctx, remotecommand.StreamOptions{Stdin: stdinR, Stdout: &out, Stderr: &errOut})
			}()
			// The session may take a moment to connect; sh reads its
			// stdin line by line, so repeating is harmless.
			deadline := time.Now().Add(15 * time.Second)
			for !strings.Contains(out.String(), "attached-42") || !strings.Contains(errOut.String(), "err-42") {
				if time.Now().After(deadline) {
					t.Fatalf("no output through attach: stdout %q stderr %q", out.String(), errOut.String())
				}
				io.WriteString(stdinW, "echo attached-$((6*7)); echo err-$((6*7)) >&2\n")
				time.Sleep(200 * time.Millisecond)
			}
			// Detaching (end of stdin) ends the session and leaves the
			// container running: it was not created stdin-once. The v4
			// WebSocket protocol cannot say stdin ended: that client
			// goes away instead.
			if name == "websocket" {
				cancel()
			} else {
				stdinW.Close()
			}
			if _, ok := waitDone(done, 15*time.Second); !ok {
				t.Fatalf("attach did not end after stdin closed")
			}
			if st := e.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				t.Fatalf("container after detach: %v", st.State)
			}
		})
	}

	t.Run("tty-resize", func(t *testing.T) {
		resp, err := e.d.Runtime.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: ttyID, Stdin: true, Stdout: true, Tty: true})
		if err != nil {
			t.Fatalf("Attach: %v", err)
		}
		stdinR, stdinW := io.Pipe()
		defer stdinW.Close()
		sizes := make(sizeQueue, 1)
		sizes <- remotecommand.TerminalSize{Width: 101, Height: 27}
		var out syncBuffer
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			done <- executors(t, resp.Url)["spdy"].StreamWithContext(sctx, remotecommand.StreamOptions{Stdin: stdinR, Stdout: &out, Tty: true, TerminalSizeQueue: sizes})
		}()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(out.String(), "size=27 101") {
			if time.Now().After(deadline) {
				t.Fatalf("resize not seen through attach: %q", out.String())
			}
			io.WriteString(stdinW, "stty size | sed s/^/size=/\n")
			time.Sleep(200 * time.Millisecond)
		}
		stdinW.Close()
		close(sizes)
		if _, ok := waitDone(done, 15*time.Second); !ok {
			t.Fatalf("tty attach did not end after stdin closed")
		}
	})

	// Stdin on a container created without it is refused.
	plain := e.run(t, e.config("plain", "sleep", "1000"))
	if _, err := e.d.Runtime.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: plain, Stdin: true, Stdout: true}); err == nil {
		t.Errorf("Attach with stdin to a container without stdin succeeded")
	}
}

// waitDone waits for a streaming session to end.
func waitDone(done <-chan error, timeout time.Duration) (error, bool) {
	select {
	case err := <-done:
		return err, true
	case <-time.After(timeout):
		return nil, false
	}
}
