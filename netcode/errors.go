package netcode

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/quic"
	"github.com/roomwire/roomwire/reliable"
)

// CloseCode says why a connection ended; see PROTOCOL.md for the list.
type CloseCode = reliable.CloseCode

// Close codes, re-exported from the wire protocol for convenience.
const (
	CloseNormal           = reliable.CloseNormal
	CloseGoingAway        = reliable.CloseGoingAway
	CloseProtocolError    = reliable.CloseProtocolError
	CloseFrameTooLarge    = reliable.CloseFrameTooLarge
	CloseVersionMismatch  = reliable.CloseVersionMismatch
	CloseHandshakeTimeout = reliable.CloseHandshakeTimeout
	CloseRefused          = reliable.CloseRefused
	CloseSlowConsumer     = reliable.CloseSlowConsumer
	CloseInternal         = reliable.CloseInternal
	CloseKicked           = reliable.CloseKicked
	CloseTimeout          = reliable.CloseTimeout
	CloseOverBudget       = reliable.CloseOverBudget
	CloseExpired          = reliable.CloseExpired
	CloseMoved            = reliable.CloseMoved
)

// CloseError is the reason a connection ended: a code, a readable reason, and
// whether the peer (Remote) or this side closed it. Disconnect callbacks and
// the errors of calls on a closed connection carry one.
// errors.Is(err, net.ErrClosed) holds for every CloseError.
type CloseError struct {
	Code   CloseCode
	Reason string
	Remote bool
	// quiet: a local close that sends no CLOSE frame, since the session
	// goes on elsewhere (a committed handoff); last, if set, is the frame
	// it sends last instead ($moved).
	quiet bool
	last  []byte
}

func (e *CloseError) Error() string {
	who := "locally"
	if e.Remote {
		who = "by peer"
	}
	return fmt.Sprintf("netcode: connection closed %s (%s): %s", who, e.Code, e.Reason)
}

// Unwrap makes errors.Is(err, net.ErrClosed) true.
func (e *CloseError) Unwrap() error { return net.ErrClosed }

// closeErrorFrom turns a transport error into the CloseError it means.
func closeErrorFrom(err error) *CloseError {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce
	}
	if te, ok := transport.AsCloseError(err); ok {
		return &CloseError{Code: CloseCode(te.Code), Reason: te.Reason, Remote: te.Remote}
	}
	return &CloseError{Code: CloseInternal, Reason: err.Error()}
}

// Errors of the netcode API.
var (
	// ErrServerClosed is returned by Serve after Shutdown or Close.
	ErrServerClosed = errors.New("netcode: server closed")
	// ErrRequestTimeout is returned by Request when no reply came in time.
	// It also satisfies errors.Is(err, context.DeadlineExceeded) when the
	// caller's context expired.
	ErrRequestTimeout = errors.New("netcode: request timed out")
	// ErrSlowConsumer closes a connection whose unsent reliable bytes passed
	// the configured limit.
	ErrSlowConsumer = errors.New("netcode: peer too slow to read")
)

// RemoteError is a request's failure as the peer's handler reported it.
type RemoteError struct {
	Event   string
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("netcode: request %q failed at peer: %s", e.Event, e.Message)
}

// IsBusy reports whether err, from Connect or Dial, is a server refusing a
// connection because it is busy right now, not because of the client: its
// accept queue, handshake table or token table was full (CLOSE code 6 with
// a reason beginning "server busy"), or quic-go's accept queue was
// (CONNECTION_REFUSED). Such a refusal is worth retrying after a short,
// random wait; many players reconnecting at once, as after a restart, meet
// it.
func IsBusy(err error) bool {
	if err == nil {
		return false
	}
	if ce := closeErrorFrom(err); ce.Code == CloseRefused && strings.HasPrefix(ce.Reason, "server busy") {
		return true
	}
	return quic.IsRefused(err)
}
