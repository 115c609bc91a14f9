package netcode

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/roomwire/roomwire/netcode/token"
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

// check opens wire and records its use from addr at now.
func (t *tokenCheck) check(wire []byte, addr net.Addr, now time.Time) (*token.Claims, error) {
	cl, err := t.opener.Open(wire, now)
	if err != nil {
		return nil, fmt.Errorf("connect token refused: %w", err)
	}
	host := addrHost(addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	if u, ok := t.used[cl.Tag]; ok && u.addr != host {
		return nil, errTokenReused
	}
	if len(t.used) >= maxTokensRemembered {
		for tag, u := range t.used {
			if now.After(u.expires) {
				delete(t.used, tag)
			}
		}
		if len(t.used) >= maxTokensRemembered {
			return nil, errors.New("connect token refused: server busy")
		}
	}
	t.used[cl.Tag] = tokenUse{addr: host, expires: cl.Expires}
	return cl, nil
}

// addrHost is the address a token is bound to on QUIC: the IP, since QUIC
// connections may migrate between ports.
func addrHost(a net.Addr) string {
	if ua, ok := a.(*net.UDPAddr); ok {
		return ua.IP.String()
	}
	return a.String()
}
