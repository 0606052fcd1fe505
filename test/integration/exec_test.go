package integration

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/floe-cri/floe/test/harness"
)

// syncBuffer collects output written by the streaming client's
// goroutines and lets the test wait for a substring.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) waitFor(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %q; output so far: %q", timeout, s, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sizeQueue feeds terminal sizes to the client.
type sizeQueue chan remotecommand.TerminalSize

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	sz, ok := <-q
	if !ok {
		return nil
	}
	return &sz
}

// executors are the kubectl-side clients: SPDY, WebSocket with the v4
// channel protocol (cri-streaming) and kubectl's own WebSocket executor,
// which speaks v5 only (served by floe's streaming package).
func executors(t *testing.T, rawURL string) map[string]remotecommand.Executor {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	spdyExec, err := remotecommand.NewSPDYExecutor(&rest.Config{}, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	wsExec, err := remotecommand.NewWebSocketExecutorForProtocols(&rest.Config{}, "GET", rawURL, "v4.channel.k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	v5Exec, err := remotecommand.NewWebSocketExecutor(&rest.Config{}, "GET", rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]remotecommand.Executor{"spdy": spdyExec, "websocket": wsExec, "websocket-v5": v5Exec}
}

func exitCode(err error) int {
	var ee interface{ ExitStatus() int }
	if errors.As(err, &ee) {
		return ee.ExitStatus()
	}
	return -1
}

func TestExecStreamingWithAndWithoutTTY(t *testing.T) {
	harness.CheckLeaks(t)
	e := newContainerEnv(t, nil)
	ctx := harness.Ctx(t)
	id := e.run(t, e.config("box", "sleep", "1000"))
	for _, name := range []string{"spdy", "websocket", "websocket-v5"} {
		t.Run(name+"/pipes", func(t *testing.T) {
			// cat needs the end of stdin, which the v4 WebSocket
			// protocol cannot signal: read one line there.
			script := "cat; echo to-err >&2; exit 3"
			if name == "websocket" {
				script = "read line; echo \"$line\"; echo to-err >&2; exit 3"
			}
			resp, err := e.d.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", script}, Stdin: true, Stdout: true, Stderr: true})
			if err != nil {
				t.Fatalf("Exec: %v", err)
			}
			var out, errOut syncBuffer
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			err = executors(t, resp.Url)[name].StreamWithContext(sctx, remotecommand.StreamOptions{
				Stdin: strings.NewReader("round trip\n"), Stdout: &out, Stderr: &errOut,
			})
			if exitCode(err) != 3 || out.String() != "round trip\n" || errOut.String() != "to-err\n" {
				t.Fatalf("exec: err %v (code %d), stdout %q, stderr %q", err, exitCode(err), out.String(), errOut.String())
			}
		})
		t.Run(name+"/tty", func(t *testing.T) {
			resp, err := e.d.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh"}, Stdin: true, Stdout: true, Tty: true})
			if err != nil {
				t.Fatalf("Exec: %v", err)
			}
			sizes := make(sizeQueue, 2)
			sizes <- remotecommand.TerminalSize{Width: 123, Height: 45}
			stdinR, stdinW := io.Pipe()
			defer stdinW.Close()
			var out syncBuffer
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- executors(t, resp.Url)[name].StreamWithContext(sctx, remotecommand.StreamOptions{
					Stdin: stdinR, Stdout: &out, Tty: true, TerminalSizeQueue: sizes,
				})
				close(sizes)
			}()
			// A prompt-independent marker: the output, not its echo,
			// holds "size=45 123". The client sends the size on its own
			// stream, so it may land after the first command: ask again
			// until it shows.
			waitSize := func(want string) {
				t.Helper()
				deadline := time.Now().Add(15 * time.Second)
				for !strings.Contains(out.String(), want) {
					if time.Now().After(deadline) {
						t.Fatalf("terminal size %q not seen: %q", want, out.String())
					}
					io.WriteString(stdinW, "stty size | sed s/^/size=/\n")
					time.Sleep(200 * time.Millisecond)
				}
			}
			io.WriteString(stdinW, "tty | sed s/^/tty=/\n")
			out.waitFor(t, "tty=/dev/pts/", 15*time.Second)
			waitSize("size=45 123")
			// A resize during the session reaches the container's terminal.
			sizes <- remotecommand.TerminalSize{Width: 90, Height: 33}
			waitSize("size=33 90")
			io.WriteString(stdinW, "exit 7\n")
			select {
			case err := <-done:
				if exitCode(err) != 7 {
					t.Fatalf("tty exec ended with %v, want exit code 7; output %q", err, out.String())
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("tty exec did not end; output %q", out.String())
			}
		})
	}
	// Round-trip time of a short command, as a number for the log: the
	// Exec RPC, the upgrade, runc exec and the exit status.
	t.Run("latency", func(t *testing.T) {
		for _, name := range []string{"spdy", "websocket-v5"} {
			var times []time.Duration
			for i := 0; i < 10; i++ {
				start := time.Now()
				resp, err := e.d.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Stdout: true})
				if err != nil {
					t.Fatal(err)
				}
				if err := executors(t, resp.Url)[name].StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: io.Discard}); err != nil {
					t.Fatalf("%s exec true: %v", name, err)
				}
				times = append(times, time.Since(start))
			}
			slices.Sort(times)
			t.Logf("%s: exec of `true` median %v, max %v over %d runs", name, times[len(times)/2], times[len(times)-1], len(times))
		}
	})

	// A client that goes away mid-stream takes its process along.
	t.Run("client-gone", func(t *testing.T) {
		resp, err := e.d.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "echo started; exec yes flood"}, Stdout: true})
		if err != nil {
			t.Fatalf("Exec: %v", err)
		}
		var out syncBuffer
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- executors(t, resp.Url)["spdy"].StreamWithContext(sctx, remotecommand.StreamOptions{Stdout: &out})
		}()
		out.waitFor(t, "started", 15*time.Second)
		cancel()
		if _, ok := waitDone(done, 15*time.Second); !ok {
			t.Fatal("client did not return after cancel")
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			ps, err := e.d.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"ps", "-o", "args"}, Timeout: 10})
			if err != nil {
				t.Fatalf("ps: %v", err)
			}
			if !strings.Contains(string(ps.Stdout), "yes flood") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the exec'd process outlived its client:\n%s", ps.Stdout)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	// Exec into a container that is not running is refused up front.
	stopped := e.run(t, e.config("quick", "true"))
	e.waitExited(t, stopped)
	if _, err := e.d.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: stopped, Cmd: []string{"true"}, Stdout: true}); err == nil {
		t.Errorf("Exec into an exited container succeeded")
	}
}
