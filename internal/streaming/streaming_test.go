package streaming

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/client-go/rest"
	clientrc "k8s.io/client-go/tools/remotecommand"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// fakeContainers stands in for the container service. Exec behaves by
// cmd[0]:
//
//	cat          copies stdin to stdout until stdin ends, writes "err:<id>" to stderr
//	line         echoes one stdin line to stdout upper-cased (needs no stdin close)
//	exit N       writes "out" and "err" and exits with code N
//	fail         returns an error that is not an exit
//	resize N     (tty) writes "WxH\n" for each of N terminal sizes
//
// Attach echoes one stdin line upper-cased and writes "attached" to stderr.
type fakeContainers struct {
	mu      sync.Mutex
	calls   []string
	resizes []remotecommand.TerminalSize
}

func (f *fakeContainers) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

// called reports whether a call was recorded exactly as s.
func (f *fakeContainers) called(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c == s {
			return true
		}
	}
	return false
}

func (f *fakeContainers) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	f.record(fmt.Sprintf("exec %s %s tty=%v in=%v out=%v err=%v", id, strings.Join(cmd, " "), tty, in != nil, out != nil, errOut != nil))
	switch cmd[0] {
	case "cat":
		if _, err := io.Copy(out, in); err != nil {
			return err
		}
		fmt.Fprintf(errOut, "err:%s", id)
		return nil
	case "line":
		return echoLine(in, out)
	case "exit":
		var code int
		fmt.Sscan(cmd[1], &code)
		out.Write([]byte("out"))
		errOut.Write([]byte("err"))
		if code == 0 {
			return nil
		}
		return utilexec.CodeExitError{Err: fmt.Errorf("exit status %d", code), Code: code}
	case "fail":
		return errors.New("runc exploded")
	case "wait": // a process that neither reads nor writes after starting
		out.Write([]byte("started"))
		select {
		case <-ctx.Done():
			f.record("cancelled " + id)
			return ctx.Err()
		case <-time.After(10 * time.Second):
			f.record("not cancelled " + id)
			return errors.New("never cancelled")
		}
	case "resize":
		var n int
		fmt.Sscan(cmd[1], &n)
		for i := 0; i < n; i++ {
			select {
			case sz, ok := <-resize:
				if !ok {
					return errors.New("resize channel closed early")
				}
				f.mu.Lock()
				f.resizes = append(f.resizes, sz)
				f.mu.Unlock()
				fmt.Fprintf(out, "%dx%d\n", sz.Width, sz.Height)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	return fmt.Errorf("fake: unknown command %q", cmd)
}

func (f *fakeContainers) Attach(ctx context.Context, id string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	f.record(fmt.Sprintf("attach %s tty=%v", id, tty))
	if errOut != nil {
		errOut.Write([]byte("attached"))
	}
	return echoLine(in, out)
}

func echoLine(in io.Reader, out io.Writer) error {
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	_, err = out.Write([]byte(strings.ToUpper(line)))
	return err
}

func startServer(t *testing.T, c Containers, netns PodNetns) *Server {
	t.Helper()
	if netns == nil {
		netns = func(string) (string, error) { return "", nil }
	}
	s, err := Start(Options{
		Address:    "127.0.0.1:0",
		PodNetns:   netns,
		Containers: c,
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// protocols are the kubelet-side clients of client-go: SPDY (v4 channel
// protocol negotiated), WebSocket with v4 (served by cri-streaming) and
// kubectl's WebSocket executor, which offers v5 only (served by wsv5.go).
var protocols = []string{"spdy", "ws-v4", "ws-v5"}

func executor(t *testing.T, proto, rawURL string) clientrc.Executor {
	t.Helper()
	var e clientrc.Executor
	var err error
	switch proto {
	case "spdy":
		var u *url.URL
		if u, err = url.Parse(rawURL); err == nil {
			e, err = clientrc.NewSPDYExecutor(&rest.Config{}, "POST", u)
		}
	case "ws-v4":
		e, err = clientrc.NewWebSocketExecutorForProtocols(&rest.Config{}, "GET", rawURL, "v4.channel.k8s.io")
	case "ws-v5":
		e, err = clientrc.NewWebSocketExecutor(&rest.Config{}, "GET", rawURL)
	}
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func stream(t *testing.T, e clientrc.Executor, o clientrc.StreamOptions) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := e.StreamWithContext(ctx, o)
	if ctx.Err() != nil {
		t.Fatalf("stream did not finish in time (err %v)", err)
	}
	return err
}

func execURL(t *testing.T, s *Server, req *runtimeapi.ExecRequest) string {
	t.Helper()
	resp, err := s.GetExec(req)
	if err != nil {
		t.Fatalf("GetExec: %v", err)
	}
	return resp.Url
}

func TestExecStdoutStderrSeparate(t *testing.T) {
	s := startServer(t, &fakeContainers{}, nil)
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "c1", Cmd: []string{"line"}, Stdin: true, Stdout: true, Stderr: true})
			var out, errOut bytes.Buffer
			err := stream(t, executor(t, proto, u), clientrc.StreamOptions{Stdin: strings.NewReader("hello " + proto + "\n"), Stdout: &out, Stderr: &errOut})
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			if want := "HELLO " + strings.ToUpper(proto) + "\n"; out.String() != want {
				t.Errorf("stdout = %q, want %q", out.String(), want)
			}
			if errOut.Len() != 0 {
				t.Errorf("stderr = %q, want nothing", errOut.String())
			}
		})
	}
}

// cat only returns once stdin ends: the client's end of input must reach
// the container. SPDY half-closes the stream; v5 sends the close signal.
// v4 WebSocket has no way to say it, which is why kubectl asks for v5.
func TestExecStdinClosePropagates(t *testing.T) {
	f := &fakeContainers{}
	s := startServer(t, f, nil)
	for _, proto := range []string{"spdy", "ws-v5"} {
		t.Run(proto, func(t *testing.T) {
			u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "c-" + proto, Cmd: []string{"cat"}, Stdin: true, Stdout: true, Stderr: true})
			var out, errOut bytes.Buffer
			in := strings.Repeat("x", 100000) + "end"
			err := stream(t, executor(t, proto, u), clientrc.StreamOptions{Stdin: strings.NewReader(in), Stdout: &out, Stderr: &errOut})
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			if out.String() != in {
				t.Errorf("stdout: %d bytes, want %d", out.Len(), len(in))
			}
			if errOut.String() != "err:c-"+proto {
				t.Errorf("stderr = %q", errOut.String())
			}
		})
	}
}

func TestExecExitCode(t *testing.T) {
	s := startServer(t, &fakeContainers{}, nil)
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "c1", Cmd: []string{"exit", "42"}, Stdout: true, Stderr: true})
			var out, errOut bytes.Buffer
			err := stream(t, executor(t, proto, u), clientrc.StreamOptions{Stdout: &out, Stderr: &errOut})
			var exitErr utilexec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 42 {
				t.Fatalf("err = %v (%T), want an exit error with code 42", err, err)
			}
			if out.String() != "out" || errOut.String() != "err" {
				t.Errorf("stdout %q stderr %q", out.String(), errOut.String())
			}
		})
	}
}

func TestExecInternalError(t *testing.T) {
	s := startServer(t, &fakeContainers{}, nil)
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "c1", Cmd: []string{"fail"}, Stdout: true})
			err := stream(t, executor(t, proto, u), clientrc.StreamOptions{Stdout: io.Discard})
			var exitErr utilexec.ExitError
			if err == nil || errors.As(err, &exitErr) || !strings.Contains(err.Error(), "runc exploded") {
				t.Fatalf("err = %v, want the runtime's error, not an exit code", err)
			}
		})
	}
}

type sizeQueue chan clientrc.TerminalSize

func (q sizeQueue) Next() *clientrc.TerminalSize {
	sz, ok := <-q
	if !ok {
		return nil
	}
	return &sz
}

func TestExecTTYResize(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			f := &fakeContainers{}
			s := startServer(t, f, nil)
			u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "c1", Cmd: []string{"resize", "2"}, Stdout: true, Tty: true})
			q := make(sizeQueue, 2)
			q <- clientrc.TerminalSize{Width: 80, Height: 24}
			q <- clientrc.TerminalSize{Width: 132, Height: 43}
			defer close(q)
			var out bytes.Buffer
			if err := stream(t, executor(t, proto, u), clientrc.StreamOptions{Stdout: &out, Tty: true, TerminalSizeQueue: q}); err != nil {
				t.Fatalf("stream: %v", err)
			}
			if out.String() != "80x24\n132x43\n" {
				t.Errorf("stdout = %q", out.String())
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			want := []remotecommand.TerminalSize{{Width: 80, Height: 24}, {Width: 132, Height: 43}}
			if fmt.Sprint(f.resizes) != fmt.Sprint(want) {
				t.Errorf("resizes = %v, want %v", f.resizes, want)
			}
			// cri-streaming's v4 WebSocket hands the runtime placeholder
			// streams for channels the client did not ask for; SPDY and
			// floe's v5 pass none.
			if len(f.calls) != 1 || !strings.Contains(f.calls[0], "tty=true") ||
				(proto != "ws-v4" && !strings.Contains(f.calls[0], "in=false out=true err=false")) {
				t.Errorf("calls = %q", f.calls)
			}
		})
	}
}

func TestAttach(t *testing.T) {
	f := &fakeContainers{}
	s := startServer(t, f, nil)
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			resp, err := s.GetAttach(&runtimeapi.AttachRequest{ContainerId: "a-" + proto, Stdin: true, Stdout: true, Stderr: true})
			if err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			if err := stream(t, executor(t, proto, resp.Url), clientrc.StreamOptions{Stdin: strings.NewReader("hi\n"), Stdout: &out, Stderr: &errOut}); err != nil {
				t.Fatalf("stream: %v", err)
			}
			if out.String() != "HI\n" || errOut.String() != "attached" {
				t.Errorf("stdout %q stderr %q", out.String(), errOut.String())
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) != len(protocols) || f.calls[0] != "attach a-spdy tty=false" {
		t.Errorf("calls = %q", f.calls)
	}
}

// syncBuffer collects output written by the client's goroutines.
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

// A client that goes away mid-session ends the exec: the runtime's
// context is cancelled, so its process is not left behind.
func TestExecClientGone(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			f := &fakeContainers{}
			s := startServer(t, f, nil)
			id := "gone-" + proto
			u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"wait"}, Stdout: true})
			var out syncBuffer
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- executor(t, proto, u).StreamWithContext(ctx, clientrc.StreamOptions{Stdout: &out}) }()
			deadline := time.Now().Add(10 * time.Second)
			for out.String() != "started" && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("client did not return after cancel")
			}
			for time.Now().Before(deadline) {
				f.mu.Lock()
				calls := strings.Join(f.calls, ";")
				f.mu.Unlock()
				if strings.Contains(calls, "cancelled") {
					if !strings.Contains(calls, "cancelled "+id) || strings.Contains(calls, "not cancelled") {
						t.Errorf("calls = %s", calls)
					}
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Errorf("the runtime's context was not cancelled when the client went away")
		})
	}
}

func TestExecWithoutContainerService(t *testing.T) {
	s := startServer(t, nil, nil)
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "c1", Cmd: []string{"true"}, Stdout: true})
			err := stream(t, executor(t, proto, u), clientrc.StreamOptions{Stdout: io.Discard})
			if err == nil || !strings.Contains(err.Error(), "container service") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestGetURLsRefuseBadRequests(t *testing.T) {
	s := startServer(t, &fakeContainers{}, nil)
	for name, req := range map[string]*runtimeapi.ExecRequest{
		"no container": {Cmd: []string{"ls"}, Stdout: true},
		"no streams":   {ContainerId: "c1", Cmd: []string{"ls"}},
		"tty+stderr":   {ContainerId: "c1", Cmd: []string{"ls"}, Stdout: true, Stderr: true, Tty: true},
	} {
		if _, err := s.GetExec(req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("GetExec %s: %v, want InvalidArgument", name, err)
		}
	}
	if _, err := s.GetAttach(&runtimeapi.AttachRequest{ContainerId: "c1"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("GetAttach without streams: %v", err)
	}
	if _, err := s.GetPortForward(&runtimeapi.PortForwardRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("GetPortForward without pod: %v", err)
	}
	if len(s.pending.m) != 0 {
		t.Errorf("refused requests were remembered: %v", s.pending.m)
	}
}

// wsDial upgrades rawURL with the given subprotocol and returns the
// handshake's HTTP status.
func wsDial(t *testing.T, rawURL, proto string) (*websocket.Conn, int) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial(strings.Replace(rawURL, "http://", "ws://", 1), nil)
	code := 0
	if resp != nil {
		code = resp.StatusCode
		resp.Body.Close()
	}
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, code
}

func TestUnknownTokenIsNotFound(t *testing.T) {
	s := startServer(t, &fakeContainers{}, nil)
	base := "http://" + s.Addr()
	for _, path := range []string{"/exec/nope", "/attach/nope", "/portforward/nope", "/nothing"} {
		resp, err := http.Post(base+path, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404", path, resp.StatusCode)
		}
		for _, proto := range []string{"v4.channel.k8s.io", protocolV5} {
			if c, code := wsDial(t, base+path, proto); c != nil || code != http.StatusNotFound {
				t.Errorf("upgrade %s (%s): status %d, want 404", path, proto, code)
			}
		}
	}
	u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "c1", Cmd: []string{"exit", "0"}, Stdout: true})
	err := stream(t, executor(t, "ws-v5", u+"x"), clientrc.StreamOptions{Stdout: io.Discard})
	if err == nil {
		t.Error("v5 exec on a wrong token succeeded")
	}
}

// A URL is good for one session, whichever protocol uses it first.
func TestURLIsSingleUse(t *testing.T) {
	for _, first := range protocols {
		for _, second := range protocols {
			t.Run(first+"-then-"+second, func(t *testing.T) {
				f := &fakeContainers{}
				s := startServer(t, f, nil)
				u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "c1", Cmd: []string{"exit", "0"}, Stdout: true, Stderr: true})
				if err := stream(t, executor(t, first, u), clientrc.StreamOptions{Stdout: io.Discard, Stderr: io.Discard}); err != nil {
					t.Fatalf("first use: %v", err)
				}
				if err := stream(t, executor(t, second, u), clientrc.StreamOptions{Stdout: io.Discard, Stderr: io.Discard}); err == nil {
					t.Errorf("second use over %s succeeded", second)
				}
				f.mu.Lock()
				defer f.mu.Unlock()
				if len(f.calls) != 1 {
					t.Errorf("container ran %d times: %q", len(f.calls), f.calls)
				}
			})
		}
	}
}

func TestPendingRequestsExpireAndSpend(t *testing.T) {
	var p pendingRequests
	p.remember("http://h/exec/old", "old")
	p.m["/exec/old"] = pendingRequest{req: "old", expires: time.Now().Add(-time.Second)}
	if req, known := p.take("/exec/old"); req != nil || known {
		t.Errorf("expired request taken: %v %v", req, known)
	}
	p.remember("http://h/exec/a", "a")
	if req, known := p.take("/exec/a"); req != "a" || !known {
		t.Errorf("first take = %v %v", req, known)
	}
	if req, known := p.take("/exec/a"); req != nil || !known {
		t.Errorf("second take = %v %v, want spent", req, known)
	}
	p.m["/exec/a"] = pendingRequest{expires: time.Now().Add(-time.Second)}
	p.remember("http://h/exec/b", "b")
	if _, ok := p.m["/exec/a"]; ok {
		t.Error("remember must drop expired entries")
	}
}

// A v5 upgrade that fails before any session ran leaves the URL usable
// for the SPDY fallback kubectl then makes.
func TestFailedV5UpgradeLeavesURLForFallback(t *testing.T) {
	f := &fakeContainers{}
	s := startServer(t, f, nil)
	u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "c1", Cmd: []string{"exit", "7"}, Stdout: true, Stderr: true})
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	// An upgrade asking for v5 without a Sec-WebSocket-Key: a bad handshake.
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Protocol", protocolV5)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		t.Fatal("bad handshake upgraded")
	}
	err = stream(t, executor(t, "spdy", u), clientrc.StreamOptions{Stdout: io.Discard, Stderr: io.Discard})
	var exitErr utilexec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 7 {
		t.Errorf("SPDY fallback: %v", err)
	}
}
