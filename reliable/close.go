package reliable

import "fmt"

// CloseCode says why a connection ended. It travels in the CLOSE frame and,
// on QUIC, as the application error code of CONNECTION_CLOSE.
type CloseCode uint16

// Close codes of protocol version 1. PROTOCOL.md lists them with their meaning.
const (
	CloseNormal           CloseCode = 0  // the peer closed on purpose
	CloseGoingAway        CloseCode = 1  // the server is shutting down
	CloseProtocolError    CloseCode = 2  // malformed or unexpected frame
	CloseFrameTooLarge    CloseCode = 3  // a frame over the receiver's limit
	CloseVersionMismatch  CloseCode = 4  // HELLO with an unsupported version
	CloseHandshakeTimeout CloseCode = 5  // no HELLO within the deadline
	CloseRefused          CloseCode = 6  // authentication or admission refused
	CloseSlowConsumer     CloseCode = 7  // the peer did not read fast enough
	CloseInternal         CloseCode = 8  // an error inside the sender
	CloseKicked           CloseCode = 9  // the application removed the peer
	CloseTimeout          CloseCode = 10 // the peer was silent too long
	CloseOverBudget       CloseCode = 11 // the peer kept sending over its budget
	CloseExpired          CloseCode = 12 // an away session was not resumed in time
	CloseMoved            CloseCode = 13 // the session moved to another server: resume there
)

func (c CloseCode) String() string {
	switch c {
	case CloseNormal:
		return "normal"
	case CloseGoingAway:
		return "going away"
	case CloseProtocolError:
		return "protocol error"
	case CloseFrameTooLarge:
		return "frame too large"
	case CloseVersionMismatch:
		return "version mismatch"
	case CloseHandshakeTimeout:
		return "handshake timeout"
	case CloseRefused:
		return "refused"
	case CloseSlowConsumer:
		return "slow consumer"
	case CloseInternal:
		return "internal error"
	case CloseKicked:
		return "kicked"
	case CloseTimeout:
		return "timeout"
	case CloseOverBudget:
		return "over budget"
	case CloseExpired:
		return "expired"
	case CloseMoved:
		return "moved"
	}
	return fmt.Sprintf("CloseCode(%d)", uint16(c))
}
