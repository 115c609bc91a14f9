package netcode

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
)

// tokenCheck opens the connect tokens QUIC clients present in their HELLO
// and remembers which IP address used each, so that a token admits one
// player only. (The KCP transport checks its own in the secure handshake.)
// The HELLO comes after the QUIC handshake, which proved the address, so a
// token is remembered only for an address its client can receive at.
type tokenCheck struct {
	opener *token.Opener
	used   *token.Table
}

func newTokenCheck(t *Tokens, cfg token.TableConfig) *tokenCheck {
	return &tokenCheck{opener: token.NewOpener(t.Key, t.ProtocolID), used: token.NewTable(cfg)}
}

// errTokenReused refuses a token already used from another address.
var errTokenReused = errors.New("connect token already used from another address")

// errTokenRefused is what a client is told of any other bad token: the
// details (expired, forged, another protocol) stay in the server's log, as
// on KCP, where a bad token gets no answer at all.
var errTokenRefused = errors.New("connect token refused")

// tokenRefusal is the reason a client reads and the name counted for a
// token check's error.
func tokenRefusal(err error) refusal {
	switch {
	case errors.Is(err, token.ErrReused):
		return refusal{errTokenReused.Error(), "token_reused"}
	case errors.Is(err, token.ErrLifetime):
		return refusal{"connect token expires too far in the future", "token_lifetime"}
	case errors.Is(err, token.ErrTooManyFromIP):
		return refusal{"too many connect tokens from your address", "tokens_per_ip"}
	case errors.Is(err, token.ErrTableFull):
		return refusal{"server busy: too many connect tokens in use", "token_table_full"}
	}
	return refusal{errTokenRefused.Error(), "token_refused"}
}

// tokenExporterLabel names the TLS keying material a token proof binds to.
const tokenExporterLabel = "EXPORTER-roomwire-token"

// check opens the HELLO auth bytes of a transport without a handshake of
// its own (wire form | proof | application bytes), checks the proof of
// possession against the session's TLS keying material and records the
// token's use from the session's IP address at now (token.Table's policies:
// lifetime, reuse, per-address share, size). It returns the claims and the
// application's auth bytes; tokenRefusal tells the client why not.
func (t *tokenCheck) check(auth []byte, sess transport.Session, challenge []byte, now time.Time) (*token.Claims, []byte, error) {
	if len(auth) < token.WireSize+token.ProofSize {
		return nil, nil, fmt.Errorf("%w: %d bytes of auth, no token", errTokenRefused, len(auth))
	}
	cl, err := t.opener.Open(auth[:token.WireSize], now)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errTokenRefused, err)
	}
	binding, err := tokenBinding(sess, challenge)
	if err != nil || !token.CheckProof(cl.ClientToServer, binding, auth[token.WireSize:token.WireSize+token.ProofSize]) {
		return nil, nil, fmt.Errorf("%w: no proof of the token's key", errTokenRefused)
	}
	// By IP address only: a QUIC connection may change its port.
	if err := t.used.Use(cl, netip.AddrPortFrom(transport.IP(sess.RemoteAddr()), 0), now); err != nil {
		return nil, nil, err
	}
	return cl, auth[token.WireSize+token.ProofSize:], nil
}

// tokenAuth is what a client sends in the HELLO on a transport without a
// token handshake: the token's wire form, the proof that it holds the
// token's key, bound to this connection, and its own auth bytes.
func tokenAuth(tok *token.ConnectToken, sess transport.Session, challenge []byte, appAuth []byte) ([]byte, error) {
	binding, err := tokenBinding(sess, challenge)
	if err != nil {
		return nil, fmt.Errorf("netcode: token binding: %w", err)
	}
	proof := token.Proof(tok.ClientToServer, binding)
	b := tok.AppendWire(make([]byte, 0, token.WireSize+token.ProofSize+len(appAuth)))
	b = append(b, proof[:]...)
	return append(b, appAuth...), nil
}

// tokenBinding is what a token proof is bound to: the server's CHALLENGE on
// a transport that has one (transport.Challenged), else the TLS exporter.
func tokenBinding(sess transport.Session, challenge []byte) ([]byte, error) {
	if challenge != nil {
		return challenge, nil
	}
	ex, ok := sess.(interface {
		ExportKeyingMaterial(string, []byte, int) ([]byte, error)
	})
	if !ok {
		return nil, errors.New("the transport has neither TLS keying material nor a challenge to bind a token to")
	}
	return ex.ExportKeyingMaterial(tokenExporterLabel, nil, 32)
}
