// Package reliable encodes and decodes the frames of Roomwire's reliable
// channel: the ordered byte stream that carries the handshake, named events,
// requests and their replies, pings and the close frame.
//
// The package does no I/O of its own beyond reading from an io.Reader it is
// given, starts no goroutines and keeps no global state, so its functions are
// safe to call concurrently on distinct values. Every frame on the wire is
//
//	type u8 | length u24 (big endian) | body[length]
//
// and every length is checked against a limit before a byte is allocated for
// it. PROTOCOL.md specifies each body byte by byte.
package reliable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Version is the protocol version this package speaks. It is carried in the
// HELLO and WELCOME frames; a peer with another version is refused.
const Version uint16 = 1

// ALPN is the application protocol name negotiated on transports that have
// one (QUIC's TLS handshake).
const ALPN = "roomwire/1"

// FrameType names a frame on the reliable channel.
type FrameType uint8

// The frame types of protocol version 1.
const (
	FrameHello      FrameType = 0x01 // client → server, first frame
	FrameWelcome    FrameType = 0x02 // server → client, answer to HELLO
	FrameEvent      FrameType = 0x03 // either way: a named event
	FrameRequest    FrameType = 0x04 // either way: a named event that wants a reply
	FrameReply      FrameType = 0x05 // answer to a REQUEST
	FrameReplyError FrameType = 0x06 // failed answer to a REQUEST
	FramePing       FrameType = 0x07 // either way: liveness and clock probe
	FramePong       FrameType = 0x08 // answer to a PING
	FrameClose      FrameType = 0x09 // either way: last frame, with a reason
	// FrameChallenge is the server's first frame on a transport that gives
	// the application no TLS keying material (WebSocket, WebTransport:
	// browsers cannot export it): random bytes the client's connect token
	// proof is bound to instead.
	FrameChallenge FrameType = 0x0a
	// FrameResume is a client's first frame on a new transport connection
	// that resumes an away session instead of opening one (PROTOCOL.md 14).
	FrameResume FrameType = 0x0b
	// FrameResumed is the server's answer to an accepted RESUME.
	FrameResumed FrameType = 0x0c
	// FrameAcked tells the peer which of its frames were handled, so that
	// it may forget them: both sides keep what they sent until then, to
	// replay it after a resume.
	FrameAcked FrameType = 0x0d
)

// ChallengeLen is the size of a CHALLENGE body.
const ChallengeLen = 32

func (t FrameType) String() string {
	switch t {
	case FrameHello:
		return "HELLO"
	case FrameWelcome:
		return "WELCOME"
	case FrameEvent:
		return "EVENT"
	case FrameRequest:
		return "REQUEST"
	case FrameReply:
		return "REPLY"
	case FrameReplyError:
		return "REPLY_ERROR"
	case FramePing:
		return "PING"
	case FramePong:
		return "PONG"
	case FrameClose:
		return "CLOSE"
	case FrameChallenge:
		return "CHALLENGE"
	case FrameResume:
		return "RESUME"
	case FrameResumed:
		return "RESUMED"
	case FrameAcked:
		return "ACKED"
	}
	return fmt.Sprintf("FrameType(0x%02x)", uint8(t))
}

// Limits of protocol version 1.
const (
	// HeaderLen is the size of every frame header: type and length.
	HeaderLen = 4
	// MaxFrameLimit is the largest body a u24 length can describe.
	MaxFrameLimit = 1<<24 - 1
	// DefaultMaxFrame is the body limit a peer applies unless configured
	// otherwise: 64 KiB.
	DefaultMaxFrame = 64 << 10
	// MaxEventName is the longest event name in bytes.
	MaxEventName = 255
	// MaxCloseReason is the longest close reason in bytes.
	MaxCloseReason = 256
	// IDLen is the size of a connection id.
	IDLen = 16
)

// Errors returned by the decoders. Each is wrapped with detail; test with
// errors.Is.
var (
	ErrFrameTooLarge = errors.New("reliable: frame too large")
	ErrTruncated     = errors.New("reliable: truncated frame")
	ErrUnknownFrame  = errors.New("reliable: unknown frame type")
	ErrBadName       = errors.New("reliable: bad event name")
	ErrBadFrame      = errors.New("reliable: malformed frame")
)

// Frame is a decoded frame. Its byte slices alias the buffer it was decoded
// from and are valid only until that buffer is reused.
type Frame struct {
	Type FrameType
	// Version is set on HELLO and WELCOME.
	Version uint16
	// ID is the request id of REQUEST, REPLY and REPLY_ERROR.
	ID uint32
	// ConnID is the connection id a WELCOME assigns.
	ConnID [IDLen]byte
	// MaxDatagram is the largest datagram, header included, a WELCOME allows.
	MaxDatagram uint16
	// Code is the close code of CLOSE.
	Code CloseCode
	// Name is the event name of EVENT and REQUEST.
	Name []byte
	// Payload is the application bytes of EVENT, REQUEST and REPLY, the auth
	// bytes of HELLO, the message of REPLY_ERROR and the reason of CLOSE.
	Payload []byte
	// Time and Echo are the clock values of PING (Time) and PONG (both).
	Time, Echo uint64
	// Received is, in RESUME, RESUMED and ACKED, the number of the next of
	// the peer's frames the sender will handle.
	Received uint32
}

func appendHeader(b []byte, t FrameType, n int) []byte {
	return append(b, byte(t), byte(n>>16), byte(n>>8), byte(n))
}

func checkName(name string) error {
	if len(name) == 0 || len(name) > MaxEventName {
		return fmt.Errorf("%w: length %d not in 1..%d", ErrBadName, len(name), MaxEventName)
	}
	return nil
}

func checkBody(n int) error {
	if n > MaxFrameLimit {
		return fmt.Errorf("%w: body of %d bytes > %d", ErrFrameTooLarge, n, MaxFrameLimit)
	}
	return nil
}

// AppendHello appends a HELLO frame: the protocol version and the client's
// authentication bytes (a connect token, or empty).
func AppendHello(b []byte, version uint16, auth []byte) ([]byte, error) {
	n := 2 + len(auth)
	if err := checkBody(n); err != nil {
		return b, err
	}
	b = appendHeader(b, FrameHello, n)
	b = binary.BigEndian.AppendUint16(b, version)
	return append(b, auth...), nil
}

// AppendWelcome appends a WELCOME frame.
func AppendWelcome(b []byte, version uint16, id [IDLen]byte, maxDatagram uint16) []byte {
	b = appendHeader(b, FrameWelcome, 2+IDLen+2)
	b = binary.BigEndian.AppendUint16(b, version)
	b = append(b, id[:]...)
	return binary.BigEndian.AppendUint16(b, maxDatagram)
}

// AppendEvent appends an EVENT frame.
func AppendEvent(b []byte, name string, payload []byte) ([]byte, error) {
	if err := checkName(name); err != nil {
		return b, err
	}
	n := 1 + len(name) + len(payload)
	if err := checkBody(n); err != nil {
		return b, err
	}
	b = appendHeader(b, FrameEvent, n)
	b = append(b, byte(len(name)))
	b = append(b, name...)
	return append(b, payload...), nil
}

// AppendRequest appends a REQUEST frame with request id id.
func AppendRequest(b []byte, id uint32, name string, payload []byte) ([]byte, error) {
	if err := checkName(name); err != nil {
		return b, err
	}
	n := 4 + 1 + len(name) + len(payload)
	if err := checkBody(n); err != nil {
		return b, err
	}
	b = appendHeader(b, FrameRequest, n)
	b = binary.BigEndian.AppendUint32(b, id)
	b = append(b, byte(len(name)))
	b = append(b, name...)
	return append(b, payload...), nil
}

// AppendReply appends a REPLY frame answering request id.
func AppendReply(b []byte, id uint32, payload []byte) ([]byte, error) {
	n := 4 + len(payload)
	if err := checkBody(n); err != nil {
		return b, err
	}
	b = appendHeader(b, FrameReply, n)
	b = binary.BigEndian.AppendUint32(b, id)
	return append(b, payload...), nil
}

// AppendReplyError appends a REPLY_ERROR frame answering request id with a
// readable message, cut to MaxCloseReason bytes.
func AppendReplyError(b []byte, id uint32, msg string) []byte {
	msg = truncateUTF8(msg, MaxCloseReason)
	b = appendHeader(b, FrameReplyError, 4+len(msg))
	b = binary.BigEndian.AppendUint32(b, id)
	return append(b, msg...)
}

// AppendPing appends a PING frame carrying the sender's clock t.
func AppendPing(b []byte, t uint64) []byte {
	b = appendHeader(b, FramePing, 8)
	return binary.BigEndian.AppendUint64(b, t)
}

// AppendPong appends a PONG frame echoing a PING's clock and adding the
// responder's clock t.
func AppendPong(b []byte, echo, t uint64) []byte {
	b = appendHeader(b, FramePong, 16)
	b = binary.BigEndian.AppendUint64(b, echo)
	return binary.BigEndian.AppendUint64(b, t)
}

// AppendClose appends a CLOSE frame with a code and a readable reason, cut to
// MaxCloseReason bytes.
func AppendClose(b []byte, code CloseCode, reason string) []byte {
	reason = truncateUTF8(reason, MaxCloseReason)
	b = appendHeader(b, FrameClose, 2+len(reason))
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	return append(b, reason...)
}

// TruncateReason makes s valid UTF-8 of at most MaxCloseReason bytes, cut at
// a rune boundary: the form close reasons and error messages travel in.
func TruncateReason(s string) string { return truncateUTF8(s, MaxCloseReason) }

func truncateUTF8(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	// Cut before the rune that byte n belongs to.
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	s = s[:n]
	return s
}

// ParseHeader decodes a frame header. It fails with ErrFrameTooLarge when the
// length exceeds max, so no caller allocates what the peer asked for.
func ParseHeader(h []byte, max int) (FrameType, int, error) {
	if len(h) < HeaderLen {
		return 0, 0, fmt.Errorf("%w: header of %d bytes", ErrTruncated, len(h))
	}
	t := FrameType(h[0])
	n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	if n > max {
		return t, n, fmt.Errorf("%w: %s body of %d bytes > limit %d", ErrFrameTooLarge, t, n, max)
	}
	return t, n, nil
}

// ParseBody decodes the body of a frame of type t. The returned frame's slices
// alias body.
func ParseBody(t FrameType, body []byte) (Frame, error) {
	f := Frame{Type: t}
	switch t {
	case FrameHello:
		if len(body) < 2 {
			return f, truncated(t, len(body))
		}
		f.Version = binary.BigEndian.Uint16(body)
		f.Payload = body[2:]
	case FrameWelcome:
		if len(body) != 2+IDLen+2 {
			return f, fmt.Errorf("%w: WELCOME of %d bytes, want %d", ErrBadFrame, len(body), 2+IDLen+2)
		}
		f.Version = binary.BigEndian.Uint16(body)
		copy(f.ConnID[:], body[2:])
		f.MaxDatagram = binary.BigEndian.Uint16(body[2+IDLen:])
	case FrameEvent:
		name, rest, err := parseName(t, body)
		if err != nil {
			return f, err
		}
		f.Name, f.Payload = name, rest
	case FrameRequest:
		if len(body) < 4 {
			return f, truncated(t, len(body))
		}
		f.ID = binary.BigEndian.Uint32(body)
		name, rest, err := parseName(t, body[4:])
		if err != nil {
			return f, err
		}
		f.Name, f.Payload = name, rest
	case FrameReply, FrameReplyError:
		if len(body) < 4 {
			return f, truncated(t, len(body))
		}
		f.ID = binary.BigEndian.Uint32(body)
		f.Payload = body[4:]
	case FramePing:
		if len(body) != 8 {
			return f, fmt.Errorf("%w: PING of %d bytes, want 8", ErrBadFrame, len(body))
		}
		f.Time = binary.BigEndian.Uint64(body)
	case FramePong:
		if len(body) != 16 {
			return f, fmt.Errorf("%w: PONG of %d bytes, want 16", ErrBadFrame, len(body))
		}
		f.Echo = binary.BigEndian.Uint64(body)
		f.Time = binary.BigEndian.Uint64(body[8:])
	case FrameClose:
		if len(body) < 2 {
			return f, truncated(t, len(body))
		}
		if len(body) > 2+MaxCloseReason {
			return f, fmt.Errorf("%w: CLOSE reason of %d bytes > %d", ErrBadFrame, len(body)-2, MaxCloseReason)
		}
		f.Code = CloseCode(binary.BigEndian.Uint16(body))
		f.Payload = body[2:]
	case FrameResume:
		if len(body) < 2+IDLen+4 {
			return f, truncated(t, len(body))
		}
		f.Version = binary.BigEndian.Uint16(body)
		copy(f.ConnID[:], body[2:])
		f.Received = binary.BigEndian.Uint32(body[2+IDLen:])
		f.Payload = body[2+IDLen+4:]
	case FrameResumed:
		if len(body) != 8 {
			return f, fmt.Errorf("%w: RESUMED of %d bytes, want 8", ErrBadFrame, len(body))
		}
		f.Version = binary.BigEndian.Uint16(body)
		f.Received = binary.BigEndian.Uint32(body[2:])
		f.MaxDatagram = binary.BigEndian.Uint16(body[6:])
	case FrameAcked:
		if len(body) != 4 {
			return f, fmt.Errorf("%w: ACKED of %d bytes, want 4", ErrBadFrame, len(body))
		}
		f.Received = binary.BigEndian.Uint32(body)
	case FrameChallenge:
		if len(body) != ChallengeLen {
			return f, fmt.Errorf("%w: CHALLENGE of %d bytes, want %d", ErrBadFrame, len(body), ChallengeLen)
		}
		f.Payload = body
	default:
		return f, fmt.Errorf("%w: 0x%02x", ErrUnknownFrame, uint8(t))
	}
	return f, nil
}

// AppendResume appends a RESUME frame for session id, whose sender will
// handle the peer's frames from received on, with auth (the resume ticket
// and its proof, or nothing on KCP).
func AppendResume(b []byte, version uint16, id [IDLen]byte, received uint32, auth []byte) ([]byte, error) {
	n := 2 + IDLen + 4 + len(auth)
	if err := checkBody(n); err != nil {
		return b, err
	}
	b = appendHeader(b, FrameResume, n)
	b = binary.BigEndian.AppendUint16(b, version)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint32(b, received)
	return append(b, auth...), nil
}

// AppendResumed appends a RESUMED frame: the server handles the client's
// frames from received on.
func AppendResumed(b []byte, version uint16, received uint32, maxDatagram uint16) []byte {
	b = appendHeader(b, FrameResumed, 8)
	b = binary.BigEndian.AppendUint16(b, version)
	b = binary.BigEndian.AppendUint32(b, received)
	return binary.BigEndian.AppendUint16(b, maxDatagram)
}

// AppendAcked appends an ACKED frame: the sender handled every frame of
// the peer's numbered before received.
func AppendAcked(b []byte, received uint32) []byte {
	return binary.BigEndian.AppendUint32(appendHeader(b, FrameAcked, 4), received)
}

// AppendChallenge appends a CHALLENGE frame carrying c.
func AppendChallenge(b []byte, c [ChallengeLen]byte) []byte {
	return append(appendHeader(b, FrameChallenge, ChallengeLen), c[:]...)
}

func truncated(t FrameType, n int) error {
	return fmt.Errorf("%w: %s body of %d bytes", ErrTruncated, t, n)
}

func parseName(t FrameType, b []byte) (name, rest []byte, err error) {
	if len(b) < 1 {
		return nil, nil, truncated(t, len(b))
	}
	n := int(b[0])
	if n == 0 {
		return nil, nil, fmt.Errorf("%w: empty name in %s", ErrBadName, t)
	}
	if len(b) < 1+n {
		return nil, nil, fmt.Errorf("%w: %s name of %d bytes, %d left", ErrTruncated, t, n, len(b)-1)
	}
	return b[1 : 1+n], b[1+n:], nil
}
