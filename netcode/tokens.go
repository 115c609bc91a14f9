package netcode

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
)

// maxTokensRemembered bounds the QUIC side's table of used tokens.
const maxTokensRemembered = 1 << 16

// tokenCheck opens the connect tokens QUIC clients present in their HELLO
// and remembers which address used each, so that a token admits one
// player only. (The KCP transport checks its own in the secure handshake.)
type tokenCheck struct {
	opener *token.Opener
	mu     sync.Mutex
	used   map[[16]byte]tokenUse
}

type tokenUse struct {
	addr    string
	expires time.Time
}

func newTokenCheck(t *Tokens) *tokenCheck {
	return &tokenCheck{opener: token.NewOpener(t.Key, t.ProtocolID), used: make(map[[16]byte]tokenUse)}
}

// errTokenReused refuses a token already used from another address.
var errTokenReused = errors.New("connect token already used from another address")

// errTokenRefused is what a client is told of any other bad token: the
// details (expired, forged, another protocol) stay in the server's log, as
// on KCP, where a bad token gets no answer at all.
var errTokenRefused = errors.New("connect token refused")

// tokenExporterLabel names the TLS keying material a token proof binds to.
const tokenExporterLabel = "EXPORTER-roomwire-token"

// check opens the HELLO auth bytes of a transport without a handshake of
// its own (wire form | proof | application bytes), checks the proof of
// possession against the session's TLS keying material and records the
// token's use from addr at now. It returns the claims and the
// application's auth bytes.
func (t *tokenCheck) check(auth []byte, sess transport.Session, now time.Time) (*token.Claims, []byte, error) {
	if len(auth) < token.WireSize+token.ProofSize {
		return nil, nil, fmt.Errorf("%w: %d bytes of auth, no token", errTokenRefused, len(auth))
	}
	cl, err := t.opener.Open(auth[:token.WireSize], now)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errTokenRefused, err)
	}
	ex, ok := sess.(interface {
		ExportKeyingMaterial(string, []byte, int) ([]byte, error)
	})
	if !ok {
		return nil, nil, fmt.Errorf("%w: the transport cannot bind a token to the connection", errTokenRefused)
	}
	binding, err := ex.ExportKeyingMaterial(tokenExporterLabel, nil, 32)
	if err != nil || !token.CheckProof(cl.ClientToServer, binding, auth[token.WireSize:token.WireSize+token.ProofSize]) {
		return nil, nil, fmt.Errorf("%w: no proof of the token's key", errTokenRefused)
	}
	host := addrHost(sess.RemoteAddr())
	t.mu.Lock()
	defer t.mu.Unlock()
	if u, ok := t.used[cl.Tag]; ok && u.addr != host {
		return nil, nil, errTokenReused
	}
	if len(t.used) >= maxTokensRemembered {
		for tag, u := range t.used {
			if now.After(u.expires) {
				delete(t.used, tag)
			}
		}
		if len(t.used) >= maxTokensRemembered {
			return nil, nil, fmt.Errorf("%w: server busy", errTokenRefused)
		}
	}
	t.used[cl.Tag] = tokenUse{addr: host, expires: cl.Expires}
	return cl, auth[token.WireSize+token.ProofSize:], nil
}

// tokenAuth is what a client sends in the HELLO on a transport without a
// token handshake: the token's wire form, the proof that it holds the
// token's key, bound to this connection, and its own auth bytes.
func tokenAuth(tok *token.ConnectToken, sess transport.Session, appAuth []byte) ([]byte, error) {
	ex, ok := sess.(interface {
		ExportKeyingMaterial(string, []byte, int) ([]byte, error)
	})
	if !ok {
		return nil, errors.New("netcode: this transport cannot carry a connect token")
	}
	binding, err := ex.ExportKeyingMaterial(tokenExporterLabel, nil, 32)
	if err != nil {
		return nil, fmt.Errorf("netcode: token binding: %w", err)
	}
	proof := token.Proof(tok.ClientToServer, binding)
	b := tok.AppendWire(make([]byte, 0, token.WireSize+token.ProofSize+len(appAuth)))
	b = append(b, proof[:]...)
	return append(b, appAuth...), nil
}

// addrHost is the address a token is bound to on QUIC: the IP, since QUIC
// connections may migrate between ports.
func addrHost(a net.Addr) string {
	if ua, ok := a.(*net.UDPAddr); ok {
		return ua.IP.String()
	}
	return a.String()
}
