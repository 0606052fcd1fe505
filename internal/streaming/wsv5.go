package streaming

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"
)

// The cri-streaming server speaks the WebSocket channel protocols up to
// v4, which cannot tell the container that stdin ended. kubectl's
// WebSocket executor asks for v5.channel.k8s.io only (v4 plus a
// stream-close signal), so exec and attach upgrades asking for v5 are
// served here with the same adapter; everything else goes to
// cri-streaming.
const protocolV5 = "v5.channel.k8s.io"

// Channel numbers of the remote command protocols.
const (
	chanStdin = iota
	chanStdout
	chanStderr
	chanError
	chanResize
)

// tokenTTL matches cri-streaming's own request cache: a URL is good for
// one use within a minute.
const tokenTTL = time.Minute

type pendingRequest struct {
	req     any // *runtimeapi.ExecRequest or *runtimeapi.AttachRequest
	expires time.Time
}

// pendingRequests remembers the requests behind the URLs handed out, so
// a v5 upgrade can be served without cri-streaming's private cache.
type pendingRequests struct {
	mu sync.Mutex
	m  map[string]pendingRequest
}

func (p *pendingRequests) remember(rawURL string, req any) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]pendingRequest{}
	}
	for k, v := range p.m {
		if now.After(v.expires) {
			delete(p.m, k)
		}
	}
	p.m[u.Path] = pendingRequest{req: req, expires: now.Add(tokenTTL)}
}

// take hands out the request behind path once. The entry stays, spent
// (req nil), until it expires, so that a URL used over one protocol
// cannot be replayed over the other: cri-streaming's cache and this one
// each know only their own uses. known reports an unexpired entry.
func (p *pendingRequests) take(path string) (req any, known bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[path]
	if !ok || time.Now().After(v.expires) {
		delete(p.m, path)
		return nil, false
	}
	p.m[path] = pendingRequest{expires: v.expires}
	return v.req, true
}

// forget drops path, spent or not: a session that never started leaves
// the URL to cri-streaming, which still holds it.
func (p *pendingRequests) forget(path string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, path)
}

// GetExec hands out the exec URL and remembers the request for a v5
// upgrade.
func (s *Server) GetExec(req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	resp, err := s.Server.GetExec(req)
	if err == nil {
		s.pending.remember(resp.Url, req)
	}
	return resp, err
}

// GetAttach hands out the attach URL and remembers the request for a v5
// upgrade.
func (s *Server) GetAttach(req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	resp, err := s.Server.GetAttach(req)
	if err == nil {
		s.pending.remember(resp.Url, req)
	}
	return resp, err
}

// wantsV5 is a WebSocket upgrade offering the v5 protocol.
func wantsV5(r *http.Request) bool {
	if !wsstream.IsWebSocketRequest(r) {
		return false
	}
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if strings.TrimSpace(p) == protocolV5 {
				return true
			}
		}
	}
	return false
}

// ServeHTTP serves v5 exec/attach upgrades and hands everything else to
// cri-streaming. Any use of an exec/attach URL spends it for both.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/exec/") || strings.HasPrefix(r.URL.Path, "/attach/") {
		req, known := s.pending.take(r.URL.Path)
		switch {
		case req != nil && wantsV5(r):
			s.serveV5(w, r, req)
			return
		case known && req == nil: // spent by an earlier session
			http.NotFound(w, r)
			return
		}
	}
	s.Server.ServeHTTP(w, r)
}

func channel(on bool, t wsstream.ChannelType) wsstream.ChannelType {
	if on {
		return t
	}
	return wsstream.IgnoreChannel
}

func (s *Server) serveV5(w http.ResponseWriter, r *http.Request, req any) {
	var stdin, stdout, stderr, tty bool
	var run func(ctx context.Context, in io.Reader, out, errOut io.WriteCloser, resize <-chan remotecommand.TerminalSize) error
	switch q := req.(type) {
	case *runtimeapi.ExecRequest:
		stdin, stdout, stderr, tty = q.Stdin, q.Stdout, q.Stderr, q.Tty
		run = func(ctx context.Context, in io.Reader, out, errOut io.WriteCloser, resize <-chan remotecommand.TerminalSize) error {
			return s.rt.Exec(ctx, q.ContainerId, q.Cmd, in, out, errOut, tty, resize)
		}
	case *runtimeapi.AttachRequest:
		stdin, stdout, stderr, tty = q.Stdin, q.Stdout, q.Stderr, q.Tty
		run = func(ctx context.Context, in io.Reader, out, errOut io.WriteCloser, resize <-chan remotecommand.TerminalSize) error {
			return s.rt.Attach(ctx, q.ContainerId, in, out, errOut, tty, resize)
		}
	default:
		http.NotFound(w, r)
		return
	}
	channels := []wsstream.ChannelType{
		channel(stdin, wsstream.ReadChannel), channel(stdout, wsstream.WriteChannel), channel(stderr, wsstream.WriteChannel),
		wsstream.WriteChannel, channel(tty, wsstream.ReadChannel),
	}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{protocolV5: {Binary: true, Channels: channels}})
	conn.SetIdleTimeout(s.idleTimeout)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		// No session ran: kubectl falls back to SPDY on the same URL.
		s.pending.forget(r.URL.Path)
		s.log.Warn("websocket v5 upgrade failed", "path", r.URL.Path, "err", err)
		return
	}
	defer conn.Close()
	// An empty message on the lowest writable channel tells the client
	// the session is established, as cri-streaming does.
	switch {
	case stdout:
		streams[chanStdout].Write([]byte{})
	case stderr:
		streams[chanStderr].Write([]byte{})
	default:
		streams[chanError].Write([]byte{})
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var resize chan remotecommand.TerminalSize
	if tty {
		resize = make(chan remotecommand.TerminalSize)
		// Ends when the resize channel ends (the connection closes) or
		// ctx is cancelled on return.
		go func() {
			defer close(resize)
			dec := json.NewDecoder(streams[chanResize])
			for {
				var sz remotecommand.TerminalSize
				if err := dec.Decode(&sz); err != nil {
					return
				}
				select {
				case resize <- sz:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	var in io.Reader
	var out, errOut io.WriteCloser
	if stdin {
		in = streams[chanStdin]
	}
	if stdout {
		out = streams[chanStdout]
	}
	if stderr {
		errOut = streams[chanStderr]
	}
	var status metav1.Status
	err = run(ctx, in, out, errOut, resize)
	var exitErr utilexec.ExitError
	switch {
	case err == nil:
		status = metav1.Status{Status: metav1.StatusSuccess}
	case errors.As(err, &exitErr) && exitErr.Exited():
		status = metav1.Status{
			Status: metav1.StatusFailure, Reason: "NonZeroExitCode",
			Message: fmt.Sprintf("command terminated with non-zero exit code: %v", err),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: "ExitCode", Message: strconv.Itoa(exitErr.ExitStatus())}}},
		}
	default:
		status = metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonInternalError, Code: http.StatusInternalServerError,
			Message: fmt.Sprintf("error executing command in container: %v", err)}
	}
	b, _ := json.Marshal(status)
	streams[chanError].Write(b)
}
