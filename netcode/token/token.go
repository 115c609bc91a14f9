// Package token issues and opens Roomwire connect tokens, modelled on the
// netcode.io standard. A backend (a matchmaker) that shares a private key
// with the game servers issues a token per player; the player presents it
// when connecting, over KCP in the secure handshake and over QUIC in the
// HELLO, so one token admits a player on either transport.
//
// A ConnectToken has a public part the client reads (the session keys, the
// server addresses, the expiry) and a private part sealed with
// XChaCha20-Poly1305 under the shared key, which only servers can open. The
// client sends the Wire form: protocol id, expiry, nonce and the sealed
// private part. PROTOCOL.md gives every layout byte by byte.
//
// A server remembers the tokens it accepted in a Table, which refuses a
// token used from a second address and cannot be filled from one address.
//
// Functions here are pure and safe for concurrent use, and so is a Table;
// none reads a clock: time is an argument.
package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sizes of the token's parts.
const (
	KeySize      = chacha20poly1305.KeySize    // 32
	NonceSize    = chacha20poly1305.NonceSizeX // 24
	PrivateSize  = 1024                        // sealed private part, tag included
	privatePlain = PrivateSize - chacha20poly1305.Overhead
	// WireSize is the size of the form a client presents.
	WireSize = 2 + 8 + 8 + NonceSize + PrivateSize
	// MaxUserData is the most application bytes a token carries.
	MaxUserData = 256
	// MaxServers is the most server addresses a token lists.
	MaxServers = 8
	// MaxServerAddr is the longest server address in bytes.
	MaxServerAddr = 64
)

// DefaultProtocolID is the protocol id of the demo game server and bot
// client ("roomwire" in ASCII). A game picks its own.
const DefaultProtocolID uint64 = 0x726f6f6d77697265

// Version is the token format version, carried in the wire form.
const Version uint16 = 1

// Key is a 32-byte secret shared by the token issuer and the game servers,
// or a per-session key inside a token.
type Key [KeySize]byte

// DevKey is the built-in development key. It is public (it is in this
// source file), so anyone can mint tokens for a server that uses it: game
// servers use it only in development mode, and say so loudly.
var DevKey = Key{
	0x72, 0x6f, 0x6f, 0x6d, 0x77, 0x69, 0x72, 0x65, 0x2d, 0x64, 0x65, 0x76, 0x2d, 0x6b, 0x65, 0x79,
	0x2d, 0x6e, 0x6f, 0x74, 0x2d, 0x61, 0x2d, 0x73, 0x65, 0x63, 0x72, 0x65, 0x74, 0x21, 0x21, 0x21,
}

// NewKey returns a random key.
func NewKey() Key {
	var k Key
	_, _ = rand.Read(k[:])
	return k
}

// ParseKey parses a key written as 64 hex digits.
func ParseKey(s string) (Key, error) {
	var k Key
	s = strings.TrimSpace(s)
	if len(s) != 2*KeySize {
		return k, fmt.Errorf("token: key must be %d hex digits, got %d characters", 2*KeySize, len(s))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, fmt.Errorf("token: key: %w", err)
	}
	return k, nil
}

// LoadKeyFile reads a key file holding 64 hex digits.
func LoadKeyFile(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("token: key file: %w", err)
	}
	return ParseKey(string(b))
}

// String is the key as 64 hex digits.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Errors of opening a token, each wrapped with detail.
var (
	ErrMalformed     = errors.New("token: malformed")
	ErrVersion       = errors.New("token: unsupported version")
	ErrProtocol      = errors.New("token: wrong protocol id")
	ErrExpired       = errors.New("token: expired")
	ErrForged        = errors.New("token: does not open with the server key")
	ErrUserDataLarge = errors.New("token: user data too large")
)

// Params describe the token to issue.
type Params struct {
	// ProtocolID names the game and its version; servers refuse tokens for
	// another protocol id.
	ProtocolID uint64
	// ClientID is the application's id for the player.
	ClientID uint64
	// UserData is up to MaxUserData bytes the server's auth hook receives.
	UserData []byte
	// Servers lists up to MaxServers addresses the client may connect to,
	// such as "kcp://203.0.113.5:7778".
	Servers []string
	// TTL is how long the token can be used to connect. Zero means 45 s.
	TTL time.Duration
	// Timeout is how long a session may be silent before it is dropped.
	// Zero means 10 s.
	Timeout time.Duration
}

// ConnectToken is what the issuer hands to a client.
type ConnectToken struct {
	ProtocolID uint64
	Expires    time.Time // whole seconds
	Nonce      [NonceSize]byte
	Private    [PrivateSize]byte // sealed; opaque to the client
	Servers    []string
	// ClientToServer and ServerToClient are the session keys for the
	// secure packet layer; the client reads them here, the server from the
	// private part.
	ClientToServer, ServerToClient Key
	Timeout                        time.Duration
}

// Claims is the private part of a token, as a server opened it.
type Claims struct {
	ProtocolID                     uint64
	ClientID                       uint64
	Expires                        time.Time
	Timeout                        time.Duration
	ClientToServer, ServerToClient Key
	UserData                       []byte
	Servers                        []string
	// Tag identifies this token (its authentication tag) for reuse checks.
	Tag [16]byte
	// Ticket is set on a token opened with a ticket key (TicketKey): a
	// resume ticket, which a server takes for a resume and nothing else.
	// The KCP listener, which opens both kinds, sets it; Open does not.
	Ticket bool
}

// Issue mints a connect token under key.
func Issue(key Key, p Params, now time.Time) (*ConnectToken, error) {
	if len(p.UserData) > MaxUserData {
		return nil, fmt.Errorf("%w: %d bytes > %d", ErrUserDataLarge, len(p.UserData), MaxUserData)
	}
	if len(p.Servers) > MaxServers {
		return nil, fmt.Errorf("token: %d servers > %d", len(p.Servers), MaxServers)
	}
	for _, s := range p.Servers {
		if len(s) == 0 || len(s) > MaxServerAddr {
			return nil, fmt.Errorf("token: server address %q not 1..%d bytes", s, MaxServerAddr)
		}
	}
	if p.TTL <= 0 {
		p.TTL = 45 * time.Second
	}
	if p.Timeout <= 0 {
		p.Timeout = 10 * time.Second
	}
	t := &ConnectToken{
		ProtocolID:     p.ProtocolID,
		Expires:        time.Unix(now.Add(p.TTL).Unix(), 0),
		Servers:        append([]string(nil), p.Servers...),
		ClientToServer: NewKey(),
		ServerToClient: NewKey(),
		Timeout:        max(p.Timeout.Round(time.Second), time.Second),
	}
	_, _ = rand.Read(t.Nonce[:])

	plain := make([]byte, 0, privatePlain)
	plain = binary.BigEndian.AppendUint64(plain, p.ClientID)
	plain = binary.BigEndian.AppendUint32(plain, uint32(t.Timeout/time.Second))
	plain = append(plain, t.ClientToServer[:]...)
	plain = append(plain, t.ServerToClient[:]...)
	plain = binary.BigEndian.AppendUint16(plain, uint16(len(p.UserData)))
	plain = append(plain, p.UserData...)
	plain = append(plain, byte(len(p.Servers)))
	for _, s := range p.Servers {
		plain = append(plain, byte(len(s)))
		plain = append(plain, s...)
	}
	plain = plain[:privatePlain] // zero padding to the fixed size

	aead, _ := chacha20poly1305.NewX(key[:])
	var ad [adSize]byte
	aead.Seal(t.Private[:0], t.Nonce[:], plain, additional(&ad, t.ProtocolID, uint64(t.Expires.Unix())))
	return t, nil
}

const adSize = 10 + 2 + 8 + 8

// additional is the data the private part is bound to: a label, the
// version, the protocol id and the expiry, so none can be changed.
func additional(ad *[adSize]byte, protocolID, expires uint64) []byte {
	copy(ad[:], "ROOMWIRE T")
	binary.BigEndian.PutUint16(ad[10:], Version)
	binary.BigEndian.PutUint64(ad[12:], protocolID)
	binary.BigEndian.PutUint64(ad[20:], expires)
	return ad[:]
}

// AppendWire appends the form a client presents to a server:
//
//	version u16 | protocol id u64 | expires u64 (unix s) | nonce [24] | private [1024]
func (t *ConnectToken) AppendWire(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, Version)
	b = binary.BigEndian.AppendUint64(b, t.ProtocolID)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Expires.Unix()))
	b = append(b, t.Nonce[:]...)
	return append(b, t.Private[:]...)
}

// Wire is AppendWire into a new slice.
func (t *ConnectToken) Wire() []byte { return t.AppendWire(make([]byte, 0, WireSize)) }

// Opener opens tokens presented to a server.
type Opener struct {
	key        Key
	protocolID uint64
}

// NewOpener returns an Opener for tokens of protocolID sealed under key.
func NewOpener(key Key, protocolID uint64) *Opener {
	return &Opener{key: key, protocolID: protocolID}
}

// Open checks and opens the wire form of a token at time now. It checks the
// length, version, protocol id and expiry before it decrypts anything.
func (o *Opener) Open(wire []byte, now time.Time) (*Claims, error) {
	if len(wire) != WireSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, len(wire), WireSize)
	}
	if v := binary.BigEndian.Uint16(wire); v != Version {
		return nil, fmt.Errorf("%w: %d", ErrVersion, v)
	}
	pid := binary.BigEndian.Uint64(wire[2:])
	if pid != o.protocolID {
		return nil, fmt.Errorf("%w: %#x, want %#x", ErrProtocol, pid, o.protocolID)
	}
	exp := binary.BigEndian.Uint64(wire[10:])
	if exp > 1<<62 || now.Unix() >= int64(exp) {
		return nil, fmt.Errorf("%w at %s", ErrExpired, time.Unix(int64(min(exp, 1<<62)), 0).UTC().Format(time.RFC3339))
	}
	nonce := wire[18 : 18+NonceSize]
	sealed := wire[18+NonceSize:]
	aead, _ := chacha20poly1305.NewX(o.key[:])
	var ad [adSize]byte
	var plainBuf [privatePlain]byte
	plain, err := aead.Open(plainBuf[:0], nonce, sealed, additional(&ad, pid, exp))
	if err != nil {
		return nil, ErrForged
	}
	c := &Claims{ProtocolID: pid, Expires: time.Unix(int64(exp), 0)}
	copy(c.Tag[:], sealed[len(sealed)-16:])
	if err := c.parse(plain); err != nil {
		return nil, err
	}
	return c, nil
}

// parse decodes the private part's plaintext. It is authenticated, but is
// checked as carefully as untrusted input all the same.
func (c *Claims) parse(p []byte) error {
	const fixed = 8 + 4 + 2*KeySize + 2
	if len(p) < fixed {
		return fmt.Errorf("%w: private part of %d bytes", ErrMalformed, len(p))
	}
	c.ClientID = binary.BigEndian.Uint64(p)
	c.Timeout = time.Duration(binary.BigEndian.Uint32(p[8:])) * time.Second
	copy(c.ClientToServer[:], p[12:])
	copy(c.ServerToClient[:], p[12+KeySize:])
	n := int(binary.BigEndian.Uint16(p[12+2*KeySize:]))
	rest := p[fixed:]
	if n > MaxUserData || n > len(rest) {
		return fmt.Errorf("%w: user data of %d bytes", ErrMalformed, n)
	}
	c.UserData = append([]byte(nil), rest[:n]...)
	rest = rest[n:]
	if len(rest) < 1 || int(rest[0]) > MaxServers {
		return fmt.Errorf("%w: server list", ErrMalformed)
	}
	count := int(rest[0])
	rest = rest[1:]
	for i := 0; i < count; i++ {
		if len(rest) < 1 || int(rest[0]) > len(rest)-1 || rest[0] == 0 || int(rest[0]) > MaxServerAddr {
			return fmt.Errorf("%w: server address %d", ErrMalformed, i)
		}
		c.Servers = append(c.Servers, string(rest[1:1+int(rest[0])]))
		rest = rest[1+int(rest[0]):]
	}
	return nil
}

// TicketKey derives from a server's token key the key it mints its resume
// tickets with (PROTOCOL.md 14.2). A ticket then opens only as a ticket,
// never as a connect token: a connected player cannot turn its tickets
// into admissions its matchmaker never granted.
func TicketKey(key Key) Key {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte("roomwire resume ticket key"))
	var k Key
	copy(k[:], m.Sum(nil))
	return k
}

// ProofSize is the size of a proof of possession.
const ProofSize = sha256.Size

// Proof proves that the sender of a token holds its client-to-server key,
// bound to one connection by binding (keying material both ends of the
// connection derive from its TLS secrets). A server that receives the token
// over a channel an eavesdropper could have seen checks it, so a copied
// token admits no one.
func Proof(clientToServer Key, binding []byte) [ProofSize]byte {
	m := hmac.New(sha256.New, clientToServer[:])
	m.Write([]byte("roomwire token proof"))
	m.Write(binding)
	var p [ProofSize]byte
	copy(p[:], m.Sum(nil))
	return p
}

// CheckProof reports whether proof is Proof(clientToServer, binding), in
// constant time.
func CheckProof(clientToServer Key, binding, proof []byte) bool {
	want := Proof(clientToServer, binding)
	return hmac.Equal(want[:], proof)
}

// MarshalBinary encodes the whole token, public part included, for the
// issuer to hand to a client (for example base64 in a JSON reply):
//
//	wire form | timeout u32 (s) | client→server key [32] | server→client key [32] | count u8 | count × (len u8 | address)
func (t *ConnectToken) MarshalBinary() ([]byte, error) {
	b := t.AppendWire(make([]byte, 0, WireSize+4+2*KeySize+1+len(t.Servers)*(1+MaxServerAddr)))
	b = binary.BigEndian.AppendUint32(b, uint32(t.Timeout/time.Second))
	b = append(b, t.ClientToServer[:]...)
	b = append(b, t.ServerToClient[:]...)
	b = append(b, byte(len(t.Servers)))
	for _, s := range t.Servers {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary produced.
func (t *ConnectToken) UnmarshalBinary(b []byte) error {
	const fixed = WireSize + 4 + 2*KeySize + 1
	if len(b) < fixed {
		return fmt.Errorf("%w: %d bytes < %d", ErrMalformed, len(b), fixed)
	}
	if v := binary.BigEndian.Uint16(b); v != Version {
		return fmt.Errorf("%w: %d", ErrVersion, v)
	}
	t.ProtocolID = binary.BigEndian.Uint64(b[2:])
	exp := binary.BigEndian.Uint64(b[10:])
	if exp > 1<<62 {
		return fmt.Errorf("%w: expiry out of range", ErrMalformed)
	}
	t.Expires = time.Unix(int64(exp), 0)
	copy(t.Nonce[:], b[18:])
	copy(t.Private[:], b[18+NonceSize:])
	p := b[WireSize:]
	t.Timeout = time.Duration(binary.BigEndian.Uint32(p)) * time.Second
	copy(t.ClientToServer[:], p[4:])
	copy(t.ServerToClient[:], p[4+KeySize:])
	count := int(p[4+2*KeySize])
	if count > MaxServers {
		return fmt.Errorf("%w: %d servers", ErrMalformed, count)
	}
	rest := p[4+2*KeySize+1:]
	t.Servers = t.Servers[:0]
	for i := 0; i < count; i++ {
		if len(rest) < 1 || rest[0] == 0 || int(rest[0]) > MaxServerAddr || int(rest[0]) > len(rest)-1 {
			return fmt.Errorf("%w: server address %d", ErrMalformed, i)
		}
		t.Servers = append(t.Servers, string(rest[1:1+int(rest[0])]))
		rest = rest[1+int(rest[0]):]
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	return nil
}
