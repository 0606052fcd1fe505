package harness

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// DialCRI connects to a CRI server's unix socket (floe, or containerd as
// a peer). The socket appears only once the server has taken its locks; a
// connection tried before that fails, and gRPC's default reconnect
// backoff (1 s, growing) would then hide how long the start really took
// (the restart benchmark read ~1010 ms whatever floe did), so the backoff
// is kept short.
func DialCRI(t testing.TB, socket string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: 20 * time.Second,
		}))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// WaitStarted polls ready (each call with a 1 s timeout) every poll until
// it answers nil. It fails the test when the server process ends first
// (its exit arrives on exited and is put back for the caller) or after
// limit; details says what helps then (the server's log).
func WaitStarted(t testing.TB, name string, exited chan error, limit, poll time.Duration, ready func(context.Context) error, details func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := ready(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case werr := <-exited:
			exited <- werr
			t.Fatalf("%s exited during startup: %v\n%s", name, werr, details())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %v: %v\n%s", name, limit, err, details())
		}
		time.Sleep(poll)
	}
}
