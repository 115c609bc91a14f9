package secure

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/roomwire/roomwire/netcode/token"
)

// challengePlain is the challenge token's plaintext size: client id,
// expiry, timeout, both session keys, the connect token's tag, the client's
// address and the user data, padded.
const challengePlain = 8 + 8 + 4 + 2*token.KeySize + 16 + 1 + 18 + 2 + token.MaxUserData + 8

// ChallengeTTL is how long a challenge may be answered.
const ChallengeTTL = 10 * time.Second

// challengeWindow is how many recent challenges are remembered as used, so
// each admits one session: a replayed RESPONSE admits nobody.
const challengeWindow = 1 << 14

// Challenger makes and checks challenge tokens with a key only this server
// process knows. The challenge carries everything the server needs to admit
// the client, so the server keeps no state for a request until the client
// proves, by echoing the challenge, that it receives packets at its address.
type Challenger struct {
	aead cipher.AEAD
	seq  atomic.Uint64
	// used marks answered challenges by sequence number (Verify's caller,
	// one goroutine, owns it).
	used window[[challengeWindow / 64]uint64]
}

// NewChallenger returns a Challenger with a fresh random key.
func NewChallenger() *Challenger {
	k := token.NewKey()
	aead, _ := chacha20poly1305.New(k[:])
	return &Challenger{aead: aead}
}

// Admission is what a verified challenge says about the client.
type Admission struct {
	Claims *token.Claims
	Addr   netip.AddrPort
}

// AppendChallenge appends the challenge token for claims and the client's
// address: seq u64 | sealed contents.
func (c *Challenger) AppendChallenge(dst []byte, cl *token.Claims, addr netip.AddrPort) []byte {
	var plain [challengePlain]byte
	p := plain[:0]
	p = binary.BigEndian.AppendUint64(p, cl.ClientID)
	exp := uint64(cl.Expires.Unix()) // < 1<<62: the top bit marks a ticket
	if cl.Ticket {
		exp |= 1 << 63
	}
	p = binary.BigEndian.AppendUint64(p, exp)
	p = binary.BigEndian.AppendUint32(p, uint32(cl.Timeout/time.Second))
	p = append(p, cl.ClientToServer[:]...)
	p = append(p, cl.ServerToClient[:]...)
	p = append(p, cl.Tag[:]...)
	ab, _ := addr.MarshalBinary() // 6 or 18 bytes
	p = append(p, byte(len(ab)))
	var ap [18]byte
	copy(ap[:], ab)
	p = append(p, ap[:]...)
	p = binary.BigEndian.AppendUint16(p, uint16(len(cl.UserData)))
	_ = append(p, cl.UserData...) // p aliases plain, which has room for it
	binary.BigEndian.PutUint64(plain[challengePlain-8:], uint64(time.Now().UnixNano()))

	seq := c.seq.Add(1)
	dst = binary.BigEndian.AppendUint64(dst, seq)
	var n [chacha20poly1305.NonceSize]byte
	return c.aead.Seal(dst, nonce(&n, seq), plain[:], nil)
}

// Verify opens a challenge token echoed from addr at now. Each challenge
// verifies once, within ChallengeTTL; Verify is for one goroutine.
func (c *Challenger) Verify(ch []byte, addr netip.AddrPort, now time.Time) (Admission, error) {
	if len(ch) != ChallengeSize {
		return Admission{}, fmt.Errorf("%w: challenge of %d bytes", ErrShort, len(ch))
	}
	seq := binary.BigEndian.Uint64(ch)
	if !c.used.fresh(seq) {
		return Admission{}, ErrReplayed
	}
	var n [chacha20poly1305.NonceSize]byte
	var buf [challengePlain]byte
	p, err := c.aead.Open(buf[:0], nonce(&n, seq), ch[8:], nil)
	if err != nil {
		return Admission{}, ErrOpen
	}
	if issued := time.Unix(0, int64(binary.BigEndian.Uint64(p[challengePlain-8:]))); now.Sub(issued) > ChallengeTTL {
		return Admission{}, fmt.Errorf("%w: challenge older than %v", ErrReplayed, ChallengeTTL)
	}
	cl := &token.Claims{
		ClientID: binary.BigEndian.Uint64(p),
		Expires:  time.Unix(int64(binary.BigEndian.Uint64(p[8:])&(1<<62-1)), 0),
		Ticket:   binary.BigEndian.Uint64(p[8:])&(1<<63) != 0,
		Timeout:  time.Duration(binary.BigEndian.Uint32(p[16:])) * time.Second,
	}
	o := 20
	copy(cl.ClientToServer[:], p[o:])
	copy(cl.ServerToClient[:], p[o+token.KeySize:])
	o += 2 * token.KeySize
	copy(cl.Tag[:], p[o:])
	o += 16
	alen := int(p[o])
	var from netip.AddrPort
	if alen > 18 || from.UnmarshalBinary(p[o+1:o+1+alen]) != nil {
		return Admission{}, fmt.Errorf("%w: challenge address", ErrOpen)
	}
	if from != addr {
		return Admission{}, fmt.Errorf("%w: challenge for %s echoed from %s", ErrOpen, from, addr)
	}
	o += 1 + 18
	ulen := int(binary.BigEndian.Uint16(p[o:]))
	if ulen > token.MaxUserData {
		return Admission{}, fmt.Errorf("%w: challenge user data", ErrOpen)
	}
	cl.UserData = append([]byte(nil), p[o+2:o+2+ulen]...)
	if !now.Before(cl.Expires) {
		return Admission{}, fmt.Errorf("token expired during the handshake")
	}
	c.used.mark(seq)
	return Admission{Claims: cl, Addr: addr}, nil
}

// SessionKeys derives the session's keys from the token's and the
// challenge both sides saw, so every session has keys of its own: a new
// session with the same token never seals with a key and nonce used before.
func SessionKeys(clientToServer, serverToClient token.Key, challenge []byte) (c2s, s2c token.Key) {
	return derive(clientToServer, "roomwire session c2s", challenge), derive(serverToClient, "roomwire session s2c", challenge)
}

func derive(key token.Key, label string, challenge []byte) token.Key {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(label))
	m.Write(challenge)
	var out token.Key
	copy(out[:], m.Sum(nil))
	return out
}
