// Package streaming runs the kubelet's streaming server (k8s.io/cri-streaming)
// that serves the URLs Exec, Attach and PortForward return, over SPDY and
// WebSocket. PortForward dials the port inside the pod's pinned network
// namespace directly: no socat, no helper process.
package streaming

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// PodNetns finds the network namespace path of a ready pod.
type PodNetns func(podSandboxID string) (string, error)

// Containers serves exec and attach; it is nil until the container
// service provides it, and Exec/Attach are then refused.
type Containers interface {
	Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error
	Attach(ctx context.Context, containerID string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error
}

// Options configure the server.
type Options struct {
	Address     string // host:port; port 0 picks a free one
	TLSCertFile string
	TLSKeyFile  string
	PodNetns    PodNetns
	Containers  Containers
	Log         *slog.Logger
}

// Server is the running streaming server.
type Server struct {
	streaming.Server
	listener net.Listener
	http     *http.Server
	done     chan struct{}
	log      *slog.Logger

	rt          *adapter
	pending     pendingRequests // see wsv5.go
	idleTimeout time.Duration
}

// Start listens and serves in the background.
func Start(o Options) (*Server, error) {
	l, err := net.Listen("tcp", o.Address)
	if err != nil {
		return nil, fmt.Errorf("streaming server listen on %s: %w", o.Address, err)
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = l.Addr().String()
	scheme := "http"
	var tlsCfg *tls.Config
	if o.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("streaming server TLS key pair: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		cfg.TLSConfig = tlsCfg
		scheme = "https"
	}
	cfg.BaseURL = &url.URL{Scheme: scheme, Host: l.Addr().String()}
	rt := &adapter{podNetns: o.PodNetns, containers: o.Containers, log: o.Log}
	inner, err := streaming.NewServer(cfg, rt)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("create streaming server: %w", err)
	}
	s := &Server{
		Server:      inner,
		listener:    l,
		done:        make(chan struct{}),
		log:         o.Log,
		rt:          rt,
		idleTimeout: cfg.StreamIdleTimeout,
	}
	s.http = &http.Server{Handler: s, TLSConfig: tlsCfg, ReadHeaderTimeout: 30 * time.Second, ConnContext: connContext}
	l = watchListener{l}
	go func() {
		defer close(s.done)
		var err error
		if tlsCfg != nil {
			err = s.http.ServeTLS(l, "", "")
		} else {
			err = s.http.Serve(l)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.Log.Error("streaming server stopped", "err", err)
		}
	}()
	o.Log.Info("streaming server listening", "url", cfg.BaseURL.String())
	return s, nil
}

// watchListener hands out connections whose context ends when the client
// is gone. cri-streaming serves SPDY on the hijacked connection with the
// request's context, and net/http stops cancelling that context once a
// connection is hijacked: without this, an exec'd process that neither
// reads stdin nor writes would outlive its client.
type watchListener struct{ net.Listener }

func (l watchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &watchedConn{Conn: c, ctx: ctx, cancel: cancel}, nil
}

// watchedConn cancels its context when a read fails (the client closed
// or reset the connection) or the connection is closed. Timeouts are
// deadlines net/http and the WebSocket idle timer set, not the client.
type watchedConn struct {
	net.Conn
	ctx    context.Context
	cancel context.CancelFunc
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		c.cancel()
	}
	return n, err
}

func (c *watchedConn) Close() error {
	c.cancel()
	return c.Conn.Close()
}

// connContext gives each connection's requests a context that also ends
// with the connection (see watchListener).
func connContext(base context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	wc, ok := c.(*watchedConn)
	if !ok {
		return base
	}
	ctx, cancel := context.WithCancel(base)
	// Runs once the connection ends, which every connection does.
	context.AfterFunc(wc.ctx, cancel)
	return ctx
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// Close stops serving and ends open streams.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.http.Shutdown(ctx)
	s.http.Close()
	<-s.done
}

// adapter implements streaming.Runtime.
type adapter struct {
	podNetns   PodNetns
	containers Containers
	log        *slog.Logger
}

var errNoContainers = errors.New("exec and attach need the container service, which this floe does not run yet")

func (a *adapter) Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	if a.containers == nil {
		return errNoContainers
	}
	return a.containers.Exec(ctx, containerID, cmd, in, out, errOut, tty, resize)
}

func (a *adapter) Attach(ctx context.Context, containerID string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	if a.containers == nil {
		return errNoContainers
	}
	return a.containers.Attach(ctx, containerID, in, out, errOut, tty, resize)
}

// PortForward copies between the client's stream and a TCP connection to
// localhost:port inside the pod's network namespace.
func (a *adapter) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	nsPath, err := a.podNetns(podSandboxID)
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var conn net.Conn
	if nsPath == "" { // host-network pod
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	} else {
		conn, err = DialInNetns(ctx, nsPath, addr)
	}
	if err != nil {
		return fmt.Errorf("port forward to pod %s port %d: %w", podSandboxID, port, err)
	}
	defer conn.Close()
	log := a.log.With("pod", podSandboxID, "port", port)
	log.Debug("port forward connected")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(conn, stream)
		// The client finished sending: half-close so the server sees EOF.
		if tcp, ok := conn.(*net.TCPConn); ok {
			tcp.CloseWrite()
		}
	}()
	_, copyErr := io.Copy(stream, conn)
	stream.Close()
	conn.Close()
	wg.Wait()
	log.Debug("port forward closed")
	if copyErr != nil && !errors.Is(copyErr, net.ErrClosed) {
		return fmt.Errorf("port forward to pod %s port %d: %w", podSandboxID, port, copyErr)
	}
	return nil
}

// DialInNetns connects to addr from inside the network namespace at
// nsPath. The socket is created on an OS thread moved into that namespace;
// a socket keeps the namespace it was created in, and the thread is
// discarded afterwards (the goroutine exits still locked).
func DialInNetns(ctx context.Context, nsPath, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread is in the pod's netns now.
		ns, err := netns.GetFromPath(nsPath)
		if err != nil {
			ch <- result{nil, fmt.Errorf("open netns %s: %w", nsPath, err)}
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			ch <- result{nil, fmt.Errorf("enter netns %s: %w", nsPath, err)}
			return
		}
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		conn, err := d.DialContext(dctx, "tcp", addr)
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}
