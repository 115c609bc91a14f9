// Package unreliable encodes and decodes Roomwire's datagrams: the unreliable,
// sequenced channel that carries snapshots down and inputs up. A datagram is
// never retransmitted; a receiver drops one older than the newest it has.
//
// The package does no I/O, starts no goroutines and reads no clock: time is
// passed in. Its types are not safe for concurrent use; each connection owns
// its own. Every datagram starts with
//
//	kind u8 | seq u16 | ack u16 | ack bits u32 (big endian)
//
// where seq numbers the sender's datagrams and ack and ack bits acknowledge
// the peer's (the Gaffer On Games scheme): nothing is resent, but each side
// learns which of its datagrams arrived, for round-trip time, loss and the
// snapshot baseline. PROTOCOL.md specifies each kind's body byte by byte.
package unreliable

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Kind names a datagram's content.
type Kind uint8

// The datagram kinds of protocol version 1.
const (
	// KindSnapshot carries one fragment of a room snapshot, server → client.
	KindSnapshot Kind = 0x01
	// KindInput carries the client's newest inputs (the last few again,
	// for redundancy) and the newest snapshot it holds, client → server.
	KindInput Kind = 0x02
	// KindAck carries only acknowledgements: the header's and the newest
	// snapshot the client holds, client → server.
	KindAck Kind = 0x03
	// KindEvent carries an unreliable event, either way.
	KindEvent Kind = 0x04
	// KindReliable carries copies of reliable frames, numbered by their
	// place on the reliable stream, either way: the receiver delivers each
	// frame once, from whichever arrives first, so a lost stream segment
	// does not wait for the transport's retransmission timeout.
	KindReliable Kind = 0x05
)

func (k Kind) String() string {
	switch k {
	case KindSnapshot:
		return "SNAPSHOT"
	case KindInput:
		return "INPUT"
	case KindAck:
		return "ACK"
	case KindEvent:
		return "EVENT"
	case KindReliable:
		return "RELIABLE"
	}
	return fmt.Sprintf("Kind(0x%02x)", uint8(k))
}

// Limits of protocol version 1.
const (
	// HeaderLen is the size of the header every datagram starts with.
	HeaderLen = 9
	// SnapshotHeaderLen is the size of a SNAPSHOT body's own header.
	SnapshotHeaderLen = 7
	// MaxDatagram is the largest datagram, header included, that a sender
	// emits. It fits QUIC's smallest datagram payload (1280-byte packets).
	MaxDatagram = 1200
	// MinDatagram is the smallest datagram limit a peer may announce.
	MinDatagram = 256
	// MaxFragments is the most fragments one snapshot may be split into.
	MaxFragments = 64
)

// Errors returned by the decoders, wrapped with detail; test with errors.Is.
var (
	ErrShort       = errors.New("unreliable: datagram too short")
	ErrUnknownKind = errors.New("unreliable: unknown datagram kind")
	ErrTooLarge    = errors.New("unreliable: datagram too large")
	ErrBadFragment = errors.New("unreliable: bad fragment header")
	ErrSnapshotBig = errors.New("unreliable: snapshot needs too many fragments")
)

// Header is the part every datagram starts with.
type Header struct {
	Kind Kind
	// Seq numbers the sender's datagrams, wrapping.
	Seq uint16
	// Ack is the newest seq received from the peer; bit i of AckBits says
	// whether Ack-1-i was received too.
	Ack     uint16
	AckBits uint32
}

// AppendHeader appends a datagram header.
func AppendHeader(b []byte, h Header) []byte {
	b = append(b, byte(h.Kind), byte(h.Seq>>8), byte(h.Seq), byte(h.Ack>>8), byte(h.Ack))
	return binary.BigEndian.AppendUint32(b, h.AckBits)
}

// PutHeader writes h over the first HeaderLen bytes of d.
func PutHeader(d []byte, h Header) {
	d[0] = byte(h.Kind)
	binary.BigEndian.PutUint16(d[1:], h.Seq)
	binary.BigEndian.PutUint16(d[3:], h.Ack)
	binary.BigEndian.PutUint32(d[5:], h.AckBits)
}

// ParseHeader decodes a datagram header and returns the body after it.
func ParseHeader(d []byte) (Header, []byte, error) {
	if len(d) < HeaderLen {
		return Header{}, nil, fmt.Errorf("%w: %d bytes", ErrShort, len(d))
	}
	if len(d) > MaxDatagram {
		return Header{}, nil, fmt.Errorf("%w: %d bytes > %d", ErrTooLarge, len(d), MaxDatagram)
	}
	h := Header{Kind: Kind(d[0]), Seq: binary.BigEndian.Uint16(d[1:]), Ack: binary.BigEndian.Uint16(d[3:]), AckBits: binary.BigEndian.Uint32(d[5:])}
	switch h.Kind {
	case KindSnapshot, KindInput, KindAck, KindEvent, KindReliable:
	default:
		return h, nil, fmt.Errorf("%w: 0x%02x", ErrUnknownKind, d[0])
	}
	return h, d[HeaderLen:], nil
}

// SeqNewer reports whether 16-bit sequence a is newer than b, allowing for
// wraparound: a is newer when it is ahead of b by less than half the space.
func SeqNewer(a, b uint16) bool {
	return a != b && a-b < 1<<15
}

// TickNewer reports whether 32-bit tick a is newer than b, allowing for
// wraparound.
func TickNewer(a, b uint32) bool {
	return a != b && a-b < 1<<31
}
