package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/gorilla/websocket"

	"github.com/floe-cri/floe/test/harness"
)

// startHTTPInNetns serves dir on 127.0.0.1:port inside the netns with
// busybox httpd; only the pod can reach it, so a response proves the
// forward went into the pod.
func startHTTPInNetns(t *testing.T, netnsName string, port int) string {
	t.Helper()
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox (Debian busybox-static) is needed: %v", err)
	}
	dir := t.TempDir()
	body := "hello from pod " + harness.Short()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte(body), 0o644)
	cmd := exec.Command("ip", "netns", "exec", netnsName, busybox, "httpd", "-f", "-p", fmt.Sprintf("127.0.0.1:%d", port), "-h", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 100; i++ {
		if out, _ := harness.Run(t, "ip", "netns", "exec", netnsName, busybox, "wget", "-q", "-O", "-", fmt.Sprintf("http://127.0.0.1:%d/", port)); out == body {
			return body
		}
		time.Sleep(30 * time.Millisecond)
	}
	t.Fatalf("httpd in %s never answered", netnsName)
	return ""
}

func TestPortForwardOverSPDYAndWebSocket(t *testing.T) {
	harness.CheckLeaks(t)
	d := harness.StartDaemon(t, harness.Options{})
	ctx := harness.Ctx(t)
	resp, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podConfig("pf")})
	if err != nil {
		t.Fatal(err)
	}
	_, info := status2(t, d, resp.PodSandboxId)
	body := startHTTPInNetns(t, info.NetnsName, 8080)

	// The host cannot reach the pod's loopback: only a real forward can.
	if _, err := http.Get("http://127.0.0.1:8080/"); err == nil {
		t.Log("note: something on the host answers on 127.0.0.1:8080 too")
	}

	dialers := map[string]func(u *url.URL) httpstream.Dialer{
		"spdy": func(u *url.URL) httpstream.Dialer {
			rt, upgrader, err := spdy.RoundTripperFor(&rest.Config{})
			if err != nil {
				t.Fatal(err)
			}
			return spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
		},
	}
	for name, mk := range dialers {
		t.Run(name, func(t *testing.T) {
			pf, err := d.Runtime.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: resp.PodSandboxId[:12], Port: []int32{8080}})
			if err != nil {
				t.Fatalf("PortForward: %v", err)
			}
			u, err := url.Parse(pf.Url)
			if err != nil || u.Hostname() != "127.0.0.1" {
				t.Fatalf("streaming URL %q must be on loopback", pf.Url)
			}
			stop, ready := make(chan struct{}), make(chan struct{})
			fw, err := portforward.NewOnAddresses(mk(u), []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
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
			ports, _ := fw.GetPorts()
			for i := 0; i < 3; i++ { // several connections through one forward
				hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
				r, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local))
				if err != nil {
					t.Fatalf("GET through %s forward: %v", name, err)
				}
				got, _ := io.ReadAll(r.Body)
				r.Body.Close()
				if string(got) != body {
					t.Errorf("body = %q, want %q", got, body)
				}
			}
		})
	}

	// WebSocket: the v4 channel protocol the streaming server speaks to
	// clients that cannot do SPDY. Each message starts with its channel
	// (0 data, 1 error); the server first announces the port on both.
	t.Run("websocket", func(t *testing.T) {
		pf, err := d.Runtime.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: resp.PodSandboxId, Port: []int32{8080}})
		if err != nil {
			t.Fatal(err)
		}
		wsURL := strings.Replace(pf.Url, "http://", "ws://", 1)
		dialer := websocket.Dialer{Subprotocols: []string{"v4.channel.k8s.io"}, HandshakeTimeout: 10 * time.Second}
		conn, hr, err := dialer.Dial(wsURL, nil)
		if err != nil {
			t.Fatalf("websocket dial %s: %v (%v)", wsURL, err, hr)
		}
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		for i := 0; i < 2; i++ {
			_, msg, err := conn.ReadMessage()
			if err != nil || len(msg) != 3 || int(msg[1])|int(msg[2])<<8 != 8080 {
				t.Fatalf("port announcement %d: %v %v", i, msg, err)
			}
		}
		if err := conn.WriteMessage(websocket.BinaryMessage, append([]byte{0}, "GET / HTTP/1.0\r\n\r\n"...)); err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		for !strings.Contains(got.String(), body) {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("read after %q: %v", got.String(), err)
			}
			if len(msg) > 0 && msg[0] == 0 {
				got.Write(msg[1:])
			} else if len(msg) > 1 {
				t.Fatalf("error channel: %s", msg[1:])
			}
		}
		if !strings.HasPrefix(got.String(), "HTTP/1.") {
			t.Errorf("response = %q", got.String())
		}
	})

	// Bad requests.
	if _, err := d.Runtime.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: resp.PodSandboxId, Port: []int32{70000}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad port: %v", err)
	}
	if _, err := d.Runtime.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown pod: %v", err)
	}
	d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: resp.PodSandboxId})
	if _, err := d.Runtime.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: resp.PodSandboxId, Port: []int32{80}}); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "not ready") {
		t.Errorf("stopped pod: %v", err)
	}
}
