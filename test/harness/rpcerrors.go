package harness

import (
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Kinds of RPC errors a client gets because the daemon died under it.
const (
	// RPCUnavailable: gRPC's code for a connection that broke or could
	// not be made (the daemon was killed mid-call or before it).
	RPCUnavailable = "Unavailable (daemon killed)"
	// RPCCanceled: the client cancelled the call itself: the test ended
	// the load after the kill, or the harness closed its connection to
	// the killed daemon (Kill9, WaitExit) while the call was in flight.
	RPCCanceled = "Canceled (by the client)"
	// RPCConnLost: a transport error that never became a gRPC status
	// (refused, reset, EOF, broken pipe).
	RPCConnLost = "connection lost (daemon killed)"
)

// connClosing is gRPC's message (grpc.ErrClientConnClosing, code
// Canceled) for a call on a connection the client itself closed.
const connClosing = "grpc: the client connection is closing"

// ClassifyKillError sorts an RPC error a load client got while the daemon
// may have been killed: expected errors (RPCUnavailable, RPCCanceled when
// clientCanceled or the client closed the connection, RPCConnLost) are what a kill explains; every other error
// ("unexpected <code>") is one floe answered while alive, or a hang, and
// means a bug. Only transport errors are matched by text: a status floe
// itself sent saying "EOF" (Unknown, Internal) is floe's error, not a kill.
func ClassifyKillError(err error, clientCanceled bool) (kind string, expected bool) {
	st, isStatus := status.FromError(err)
	switch {
	case err == nil:
		return "", true
	case isStatus && st.Code() == codes.Unavailable:
		return RPCUnavailable, true
	case isStatus && st.Code() == codes.Canceled && (clientCanceled || st.Message() == connClosing):
		return RPCCanceled, true
	case isStatus:
		return "unexpected " + st.Code().String(), false
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "connection reset", "EOF", "broken pipe"} {
		if strings.Contains(msg, s) {
			return RPCConnLost, true
		}
	}
	return "unexpected non-gRPC error", false
}
