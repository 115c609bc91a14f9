// Package secure is the packet layer under Roomwire's KCP transport and its
// raw datagrams, modelled on the netcode.io standard: a client may talk to a
// server only with a connect token (package token), the handshake is
// request → challenge → response so a spoofed source address gets no state
// and never more bytes back than it sent, and every packet after it is
// sealed with ChaCha20-Poly1305 under per-direction session keys, with the
// packet's sequence number as nonce and a 256-entry replay window.
//
// This package encodes, seals and opens packets; it has no sockets and no
// goroutines. A Sealer is safe for concurrent use; an Opener and a Replay
// window belong to one reader goroutine. PROTOCOL.md gives every layout
// byte by byte.
package secure

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/roomwire/roomwire/netcode/token"
)

// PacketType is a secure-layer packet's first byte.
type PacketType uint8

// The packet types of version 1.
const (
	PacketRequest    PacketType = 0x01 // client → server, plaintext: a connect token
	PacketDenied     PacketType = 0x02 // server → client, sealed: server full
	PacketChallenge  PacketType = 0x03 // server → client, sealed: challenge token
	PacketResponse   PacketType = 0x04 // client → server, plaintext: challenge token echoed
	PacketKeepAlive  PacketType = 0x05 // both, sealed: liveness; confirms the connection
	PacketKCP        PacketType = 0x06 // both, sealed: one KCP segment batch
	PacketDatagram   PacketType = 0x07 // both, sealed: one Roomwire datagram
	PacketDisconnect PacketType = 0x08 // both, sealed: close code and reason
)

func (t PacketType) String() string {
	switch t {
	case PacketRequest:
		return "REQUEST"
	case PacketDenied:
		return "DENIED"
	case PacketChallenge:
		return "CHALLENGE"
	case PacketResponse:
		return "RESPONSE"
	case PacketKeepAlive:
		return "KEEPALIVE"
	case PacketKCP:
		return "KCP"
	case PacketDatagram:
		return "DATAGRAM"
	case PacketDisconnect:
		return "DISCONNECT"
	}
	return fmt.Sprintf("PacketType(0x%02x)", uint8(t))
}

// Sizes of version 1.
const (
	// MaxPacket is the largest packet either side sends or accepts.
	MaxPacket = 1200
	// Overhead is what sealing adds to a payload: type, sequence, tag.
	Overhead = 1 + 8 + chacha20poly1305.Overhead
	// MaxPayload is the largest sealed payload.
	MaxPayload = MaxPacket - Overhead
	// RequestSize is the exact size of a REQUEST packet.
	RequestSize = 1 + token.WireSize
	// ChallengeSize is the challenge token: sequence and sealed contents.
	ChallengeSize = 8 + challengePlain + chacha20poly1305.Overhead
	// ResponseSize is the exact size of a RESPONSE packet.
	ResponseSize = 1 + ChallengeSize
	// MaxReason is the longest DISCONNECT reason.
	MaxReason = 256
)

// Errors of opening packets, for counting; none is ever answered.
var (
	ErrShort    = errors.New("secure: packet too short")
	ErrLarge    = errors.New("secure: packet too large")
	ErrType     = errors.New("secure: unexpected packet type")
	ErrOpen     = errors.New("secure: packet does not open")
	ErrReplayed = errors.New("secure: replayed or too old packet")
)

// adSize is the size of the additional data every sealed packet is bound
// to: a label, the version, the protocol id and the packet type.
const adSize = 10 + 2 + 8 + 1

// additionalData is the additional data for each packet type, computed once
// per protocol id so that sealing and opening allocate nothing. It depends
// on nothing else, and at 5 KB a table per Sealer and Opener would be most
// of an idle session's memory, so they share one (additional).
type additionalData [256][adSize]byte

// additionalTables caps how many protocol ids keep a shared table; a
// process that uses more (a fuzzing client) gets a table of its own for
// each Sealer and Opener beyond them.
const additionalTables = 16

var additionals struct {
	sync.Mutex
	m map[uint64]*additionalData
}

// additional returns the shared table for protocolID.
func additional(protocolID uint64) *additionalData {
	additionals.Lock()
	defer additionals.Unlock()
	if ad, ok := additionals.m[protocolID]; ok {
		return ad
	}
	ad := newAdditional(protocolID)
	if len(additionals.m) < additionalTables {
		if additionals.m == nil {
			additionals.m = make(map[uint64]*additionalData)
		}
		additionals.m[protocolID] = ad
	}
	return ad
}

func newAdditional(protocolID uint64) *additionalData {
	ad := new(additionalData)
	for t := range ad {
		copy(ad[t][:], "ROOMWIRE P")
		binary.BigEndian.PutUint16(ad[t][10:], token.Version)
		binary.BigEndian.PutUint64(ad[t][12:], protocolID)
		ad[t][20] = byte(t)
	}
	return ad
}

// nonce writes seq into n's last 8 bytes: the packet nonce (the first 4 stay
// zero; each direction has its own key).
func nonce(n *[chacha20poly1305.NonceSize]byte, seq uint64) []byte {
	binary.BigEndian.PutUint64(n[4:], seq)
	return n[:]
}

// Sealer seals the packets of one direction of one session. Each packet
// takes the next sequence number, which is also its nonce, so a key never
// seals two packets with one nonce.
type Sealer struct {
	aead cipher.AEAD
	ad   *additionalData
	seq  atomic.Uint64

	mu    sync.Mutex // guards nonce, the scratch that keeps Seal from allocating
	nonce [chacha20poly1305.NonceSize]byte
}

// NewSealer returns a Sealer for key.
func NewSealer(key token.Key, protocolID uint64) *Sealer {
	aead, _ := chacha20poly1305.New(key[:])
	return &Sealer{aead: aead, ad: additional(protocolID)}
}

// Seal appends the sealed packet of type t with payload to dst:
//
//	type u8 | seq u64 | ciphertext | tag [16]
//
// It does not allocate when dst has room for len(payload)+Overhead.
func (s *Sealer) Seal(dst []byte, t PacketType, payload []byte) []byte {
	return s.SealSeq(dst, t, s.seq.Add(1)-1, payload)
}

// HandshakeSeq returns a random sequence number with the top bit set, for
// the packets a server seals before a session exists (CHALLENGE, DENIED).
// Session packets count up from 0 and never reach the top bit, and the
// random part keeps a server that holds no state per request from sealing
// two packets with one key and nonce.
func HandshakeSeq() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1<<63
}

// IsHandshakeSeq reports whether seq is from HandshakeSeq.
func IsHandshakeSeq(seq uint64) bool { return seq&(1<<63) != 0 }

// SealSeq is Seal with an explicit sequence number; each (key, seq) pair
// must be used once.
func (s *Sealer) SealSeq(dst []byte, t PacketType, seq uint64, payload []byte) []byte {
	dst = append(dst, byte(t))
	dst = binary.BigEndian.AppendUint64(dst, seq)
	s.mu.Lock()
	dst = s.aead.Seal(dst, nonce(&s.nonce, seq), payload, s.ad[t][:])
	s.mu.Unlock()
	return dst
}

// Opener opens the packets of one direction of one session and drops
// replays. It is not safe for concurrent use.
type Opener struct {
	aead   cipher.AEAD
	ad     *additionalData
	nonce  [chacha20poly1305.NonceSize]byte
	Replay Replay
}

// NewOpener returns an Opener for key.
func NewOpener(key token.Key, protocolID uint64) *Opener {
	aead, _ := chacha20poly1305.New(key[:])
	return &Opener{aead: aead, ad: additional(protocolID)}
}

// SeqOf returns a sealed packet's sequence number, so a client can tell
// handshake packets from session packets before opening; ok is false for a
// packet too short to be sealed.
func SeqOf(packet []byte) (seq uint64, ok bool) {
	if len(packet) < Overhead {
		return 0, false
	}
	return binary.BigEndian.Uint64(packet[1:]), true
}

// Open checks and decrypts a sealed packet into dst (which may be
// packet[:0] to decrypt in place) and returns its type and payload. The
// replay window is updated only for packets that open.
func (o *Opener) Open(dst, packet []byte) (PacketType, []byte, error) {
	if len(packet) < Overhead {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrShort, len(packet))
	}
	if len(packet) > MaxPacket {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrLarge, len(packet))
	}
	t := PacketType(packet[0])
	switch t {
	case PacketDenied, PacketChallenge, PacketKeepAlive, PacketKCP, PacketDatagram, PacketDisconnect:
	default:
		return t, nil, fmt.Errorf("%w: %s", ErrType, t)
	}
	seq := binary.BigEndian.Uint64(packet[1:])
	if !o.Replay.Fresh(seq) {
		return t, nil, ErrReplayed
	}
	out, err := o.aead.Open(dst, nonce(&o.nonce, seq), packet[9:], o.ad[t][:])
	if err != nil {
		return t, nil, ErrOpen
	}
	o.Replay.Mark(seq)
	return t, out, nil
}

// ReplayWindow is how many sequence numbers behind the newest a packet may
// be and still be accepted once.
const ReplayWindow = 256

// Replay remembers which of the last ReplayWindow sequence numbers were
// received. The zero value is ready.
type Replay struct {
	w window[[ReplayWindow / 64]uint64]
}

// Fresh reports whether seq was not received yet and is within the window.
func (r *Replay) Fresh(seq uint64) bool { return r.w.fresh(seq) }

// Mark records seq as received.
func (r *Replay) Mark(seq uint64) { r.w.mark(seq) }

// bitset is the storage of a window: 64 sequence numbers a word.
type bitset interface {
	~[ReplayWindow / 64]uint64 | ~[challengeWindow / 64]uint64
}

// window remembers which of the last len(bits)*64 sequence numbers were
// seen: packets' (Replay) and challenges' (Challenger). The zero value is
// ready.
type window[B bitset] struct {
	newest uint64
	seen   bool
	bits   B
}

func (w *window[B]) size() uint64 { return uint64(len(w.bits)) * 64 }

// fresh reports whether seq was not seen yet and is within the window.
func (w *window[B]) fresh(seq uint64) bool {
	if !w.seen || seq > w.newest {
		return true
	}
	if w.newest-seq >= w.size() {
		return false
	}
	i := seq % w.size()
	return w.bits[i/64]&(1<<(i%64)) == 0
}

// mark records seq as seen.
func (w *window[B]) mark(seq uint64) {
	size := w.size()
	if !w.seen {
		w.seen, w.newest = true, seq
	} else if seq > w.newest {
		if seq-w.newest >= size {
			var empty B
			w.bits = empty
		} else {
			for s := w.newest + 1; s <= seq; s++ {
				i := s % size
				w.bits[i/64] &^= 1 << (i % 64)
			}
		}
		w.newest = seq
	}
	i := seq % size
	w.bits[i/64] |= 1 << (i % 64)
}

// AppendRequest appends a REQUEST packet: the type and the token's wire form.
func AppendRequest(dst []byte, t *token.ConnectToken) []byte {
	return t.AppendWire(append(dst, byte(PacketRequest)))
}

// AppendDisconnect appends a DISCONNECT payload: code u16 | reason.
func AppendDisconnect(dst []byte, code uint16, reason string) []byte {
	if len(reason) > MaxReason {
		n := MaxReason
		for n > 0 && !utf8.RuneStart(reason[n]) {
			n-- // cut before a rune, never inside one
		}
		reason = reason[:n]
	}
	dst = binary.BigEndian.AppendUint16(dst, code)
	return append(dst, reason...)
}

// ParseDisconnect decodes a DISCONNECT payload.
func ParseDisconnect(p []byte) (uint16, string, error) {
	if len(p) < 2 || len(p) > 2+MaxReason {
		return 0, "", fmt.Errorf("%w: DISCONNECT payload of %d bytes", ErrShort, len(p))
	}
	return binary.BigEndian.Uint16(p), string(p[2:]), nil
}
