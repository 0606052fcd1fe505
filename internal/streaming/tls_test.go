package streaming

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	clientrc "k8s.io/client-go/tools/remotecommand"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// selfSigned writes a certificate for 127.0.0.1 and its key; it returns
// their paths and the certificate's PEM.
func selfSigned(t *testing.T) (certFile, keyFile string, certPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "floe-streaming-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	os.WriteFile(certFile, certPEM, 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile, certPEM
}

// With a key pair the server hands out https URLs and serves every
// protocol over TLS; a client gone over TLS still ends the exec.
func TestTLS(t *testing.T) {
	certFile, keyFile, certPEM := selfSigned(t)
	f := &fakeContainers{}
	s, err := Start(Options{Address: "127.0.0.1:0", TLSCertFile: certFile, TLSKeyFile: keyFile, Containers: f,
		PodNetns: hostNetns, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cfg := &rest.Config{TLSClientConfig: rest.TLSClientConfig{CAData: certPEM}}
	exec := func(proto, rawURL string) clientrc.Executor {
		var e clientrc.Executor
		var err error
		switch proto {
		case "spdy":
			u, _ := url.Parse(rawURL)
			e, err = clientrc.NewSPDYExecutor(cfg, "POST", u)
		case "ws-v5":
			e, err = clientrc.NewWebSocketExecutor(cfg, "GET", rawURL)
		}
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	for _, proto := range []string{"spdy", "ws-v5"} {
		u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "c1", Cmd: []string{"line"}, Stdin: true, Stdout: true})
		if !strings.HasPrefix(u, "https://127.0.0.1:") {
			t.Fatalf("URL %q", u)
		}
		var out bytes.Buffer
		if err := stream(t, exec(proto, u), clientrc.StreamOptions{Stdin: strings.NewReader("tls\n"), Stdout: &out}); err != nil || out.String() != "TLS\n" {
			t.Errorf("%s over TLS: %q %v", proto, out.String(), err)
		}
	}
	// Without the CA the client refuses the server.
	u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "c1", Cmd: []string{"line"}, Stdin: true, Stdout: true})
	pu, _ := url.Parse(u)
	e, _ := clientrc.NewSPDYExecutor(&rest.Config{}, "POST", pu)
	if err := stream(t, e, clientrc.StreamOptions{Stdin: strings.NewReader("x\n"), Stdout: io.Discard}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted server: %v", err)
	}

	u = execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "tls-gone", Cmd: []string{"wait"}, Stdout: true})
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- exec("spdy", u).StreamWithContext(ctx, clientrc.StreamOptions{Stdout: &out}) }()
	deadline := time.Now().Add(10 * time.Second)
	for out.String() != "started" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	for !f.called("cancelled tls-gone") {
		if time.Now().After(deadline) {
			t.Fatal("exec over TLS not cancelled when its client went away")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
