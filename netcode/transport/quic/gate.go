package quic

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"

	quicgo "github.com/quic-go/quic-go"

	"github.com/roomwire/roomwire/netcode/transport"
)

// Reasons a gate refuses a connection attempt, as Config.OnRefuse hears
// them.
const (
	// RefusedHandshakes: MaxHandshakes handshakes were in progress.
	RefusedHandshakes = "quic_handshakes"
	// RefusedHandshakesPerIP: the attempt's IP address had
	// MaxHandshakesPerIP handshakes in progress.
	RefusedHandshakesPerIP = "quic_handshakes_per_ip"
)

var errRefused = errors.New("quic: too many handshakes in progress")

// gate bounds the QUIC handshakes in progress, from the client's first
// Initial packet until the listener accepts the connection (its handshake
// done) or it fails, before quic-go spends any work on them beyond reading
// that packet. quic-go calls needRetry and then connContext for each new
// connection attempt, on its one packet-handling goroutine; connections
// end on theirs.
//
// An address is not proven until the handshake is done, so counts per
// address are kept apart for attempts whose address a Retry proved
// (verified) and for the others: a flood of Initials with a forged source
// address can fill the second for that address, which only makes that
// address answer a Retry, and never the first, which refuses.
type gate struct {
	max, maxPerIP int
	// retryAbove is the number of handshakes in progress from which every
	// attempt from an unproven address must first answer a Retry.
	retryAbove int
	onRefuse   func(reason string)
	onFailed   func(HandshakeFailure)

	mu         sync.Mutex
	pending    int // handshakes in progress
	live       int // connections quic-go holds for us, pending or accepted
	unverified map[netip.Addr]int
	verified   map[netip.Addr]int
	closed     bool
	idle       func() // called once when closed and no connection is live
	idleOnce   sync.Once
}

func newGate(cfg Config) *gate {
	g := &gate{
		max:        cfg.MaxHandshakes,
		maxPerIP:   cfg.MaxHandshakesPerIP,
		onRefuse:   cfg.OnRefuse,
		onFailed:   cfg.OnHandshakeFailed,
		unverified: make(map[netip.Addr]int),
		verified:   make(map[netip.Addr]int),
	}
	if g.max <= 0 {
		g.max = defaultMaxHandshakes
	}
	if g.maxPerIP <= 0 {
		g.maxPerIP = defaultMaxHandshakesPerIP
	}
	g.retryAbove = max(g.max/2, 1)
	return g
}

// ticket is one connection attempt the gate let in.
type ticket struct {
	g        *gate
	ip       netip.Addr
	remote   net.Addr
	verified bool
	// pending is true until the connection is accepted or ends (g.mu).
	pending bool
	// alpn is what the client offered, when OnHandshakeFailed wants it
	// (g.mu).
	alpn []string
}

type ticketKey struct{}

// needRetry is quic-go's Transport.VerifySourceAddress: whether an attempt
// from addr, not yet proven, must first answer a Retry (RFC 9000 8.1.2),
// which costs the client one round trip and the server no state.
func (g *gate) needRetry(addr net.Addr) bool {
	ip := transport.IP(addr)
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pending >= g.retryAbove || g.unverified[ip] >= g.maxPerIP
}

// connContext is quic-go's Transport.ConnContext: it admits the attempt,
// with a ticket in the context that the listener finds on the accepted
// connection, or refuses it (quic-go answers CONNECTION_REFUSED; a reason
// cannot be sent before the handshake).
func (g *gate) connContext(ctx context.Context, info *quicgo.ClientInfo) (context.Context, error) {
	ip := transport.IP(info.RemoteAddr)
	g.mu.Lock()
	per := g.unverified
	if info.AddrVerified {
		per = g.verified
	}
	reason := ""
	switch {
	case g.pending >= g.max:
		reason = RefusedHandshakes
	case per[ip] >= g.maxPerIP:
		reason = RefusedHandshakesPerIP
	}
	if reason != "" {
		g.mu.Unlock()
		if g.onRefuse != nil {
			g.onRefuse(reason)
		}
		return nil, errRefused
	}
	per[ip]++
	g.pending++
	g.live++
	g.mu.Unlock()
	t := &ticket{g: g, ip: ip, remote: info.RemoteAddr, verified: info.AddrVerified, pending: true}
	// quic-go cancels the context when the connection ends or its handshake
	// fails, with the reason as its cause.
	context.AfterFunc(ctx, func() { t.end(context.Cause(ctx)) })
	return context.WithValue(ctx, ticketKey{}, t), nil
}

// offered notes the protocols the client's ClientHello offered.
func (t *ticket) offered(alpn []string) {
	t.g.mu.Lock()
	t.alpn = append([]string(nil), alpn...)
	t.g.mu.Unlock()
}

// accepted moves the connection out of the handshakes in progress.
func (t *ticket) accepted() {
	t.g.mu.Lock()
	t.donePending()
	t.g.mu.Unlock()
}

// end releases the connection's place; cause is why the connection
// ended.
func (t *ticket) end(cause error) {
	g := t.g
	g.mu.Lock()
	failed := t.pending && !g.closed
	t.donePending()
	g.live--
	idle := g.closed && g.live == 0
	alpn := t.alpn
	g.mu.Unlock()
	if failed && g.onFailed != nil {
		g.onFailed(HandshakeFailure{Remote: t.remote, ALPN: alpn, Err: cause})
	}
	if idle {
		g.becameIdle()
	}
}

// donePending ends the ticket's handshake in progress, once (g.mu held).
func (t *ticket) donePending() {
	if !t.pending {
		return
	}
	t.pending = false
	g := t.g
	g.pending--
	per := g.unverified
	if t.verified {
		per = g.verified
	}
	if per[t.ip]--; per[t.ip] <= 0 {
		delete(per, t.ip)
	}
}

// close marks the gate closed; idle runs once no connection is live, at
// once if none is.
func (g *gate) close(idle func()) {
	g.mu.Lock()
	g.closed, g.idle = true, idle
	now := g.live == 0
	g.mu.Unlock()
	if now {
		g.becameIdle()
	}
}

func (g *gate) becameIdle() {
	g.idleOnce.Do(func() {
		g.mu.Lock()
		f := g.idle
		g.mu.Unlock()
		if f != nil {
			f()
		}
	})
}

// ticketOf is the ticket of an accepted connection's context.
func ticketOf(ctx context.Context) *ticket {
	t, _ := ctx.Value(ticketKey{}).(*ticket)
	return t
}
