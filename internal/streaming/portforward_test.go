package streaming

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// echoServer answers each line of a TCP connection with "echo:" and the
// line, and closes only once the client half-closed: a read to EOF on the
// client proves the end of input went through.
func echoServer(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					c.Write([]byte("echo:" + line))
				}
			}()
		}
	}()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

// hostNetns resolves every pod but "gone" to the host network.
func hostNetns(id string) (string, error) {
	if id == "gone" {
		return "", errors.New("pod gone is not ready")
	}
	return "", nil
}

func pfURL(t *testing.T, s *Server, pod string, ports ...int32) string {
	t.Helper()
	resp, err := s.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: pod, Port: ports})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Url
}

// TestPortForwardSPDY drives the kubelet's own port-forward client.
func TestPortForwardSPDY(t *testing.T) {
	port := echoServer(t)
	s := startServer(t, &fakeContainers{}, hostNetns)
	u, err := url.Parse(pfURL(t, s, "p1"))
	if err != nil {
		t.Fatal(err)
	}
	rt, upgrader, err := spdy.RoundTripperFor(&rest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("forward: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("forward not ready")
	}
	defer func() { close(stop); <-errc }()
	ports, err := fw.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // several connections share one forward
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0].Local))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		msg := fmt.Sprintf("hello %d\n", i)
		c.Write([]byte(msg))
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != "echo:"+msg {
			t.Fatalf("connection %d: %q %v", i, got, err)
		}
	}
}

// wsPortForward opens the WebSocket port-forward protocol (portforward.k8s.io
// over v4 channels: 0 data, 1 error; each starts with the port number).
func wsPortForward(t *testing.T, rawURL string, port int32) *websocket.Conn {
	t.Helper()
	c, code := wsDial(t, rawURL, "v4.channel.k8s.io")
	if c == nil {
		t.Fatalf("websocket port forward: status %d", code)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for i := 0; i < 2; i++ {
		_, msg, err := c.ReadMessage()
		if err != nil || len(msg) != 3 || int32(msg[1])|int32(msg[2])<<8 != port {
			t.Fatalf("port announcement %d: %v %v", i, msg, err)
		}
	}
	return c
}

func TestPortForwardWebSocket(t *testing.T) {
	port := echoServer(t)
	s := startServer(t, &fakeContainers{}, hostNetns)
	c := wsPortForward(t, pfURL(t, s, "p1", port), port)
	if err := c.WriteMessage(websocket.BinaryMessage, append([]byte{0}, "ping\n"...)); err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for got.String() != "echo:ping\n" {
		_, msg, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("read after %q: %v", got.String(), err)
		}
		if len(msg) > 1 && msg[0] == 1 {
			t.Fatalf("error channel: %s", msg[1:])
		}
		if len(msg) > 0 && msg[0] == 0 {
			got.Write(msg[1:])
		}
	}
}

// Errors reaching the pod's port come back on the error channel, naming
// the pod and port.
func TestPortForwardErrors(t *testing.T) {
	s := startServer(t, &fakeContainers{}, hostNetns)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := int32(l.Addr().(*net.TCPAddr).Port)
	l.Close() // nothing listens there now
	for name, tc := range map[string]struct {
		pod  string
		want string
	}{
		"refused":   {"p1", fmt.Sprintf("port forward to pod p1 port %d", closed)},
		"not ready": {"gone", "pod gone is not ready"},
	} {
		t.Run(name, func(t *testing.T) {
			c := wsPortForward(t, pfURL(t, s, tc.pod, closed), closed)
			for {
				_, msg, err := c.ReadMessage()
				if err != nil {
					t.Fatalf("no error message before the end: %v", err)
				}
				if len(msg) > 1 && msg[0] == 1 {
					if !strings.Contains(string(msg[1:]), tc.want) {
						t.Errorf("error = %q, want %q", msg[1:], tc.want)
					}
					return
				}
			}
		})
	}
}

func TestDialInNetnsBadPath(t *testing.T) {
	_, err := DialInNetns(context.Background(), "/nonexistent/netns", "127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "open netns /nonexistent/netns") {
		t.Errorf("err = %v", err)
	}
}
