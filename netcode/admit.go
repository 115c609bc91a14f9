package netcode

import (
	"net/netip"
	"sync"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/kcp"
	"github.com/roomwire/roomwire/netcode/transport/quic"
	"github.com/roomwire/roomwire/netcode/transport/websocket"
	"github.com/roomwire/roomwire/netcode/transport/webtransport"
)

// Admission: what the server refuses before a connection's HELLO, so that
// no table can be filled from outside (Config's admission limits). Each
// refusal closes that one connection with CloseRefused and a reason and is
// counted in Metrics.Drops.

// refusal is why a connection is refused: the reason its client reads and
// the name it is counted under.
type refusal struct {
	reason, drop string
}

// The refusals of the admission limits.
var (
	refusedConnsPerIP   = &refusal{"too many connections from your address", "quic_conns_per_ip"}
	refusedConnsTotal   = &refusal{"server full", "quic_conns_total"}
	refusedWSConnsPerIP = &refusal{"too many connections from your address", "ws_conns_per_ip"}
	refusedWSConnsTotal = &refusal{"server full", "ws_conns_total"}
	refusedPending      = &refusal{"server busy: too many pending handshakes", "pending_handshakes"}
)

// connLimits counts connections by IP address and in all, for
// MaxConnsPerIP and MaxConns. Safe for concurrent use.
type connLimits struct {
	maxPerIP, max              int
	refusedPerIP, refusedTotal *refusal

	mu    sync.Mutex
	perIP map[netip.Addr]int
	total int
}

// newConnLimits counts against maxPerIP and max, refusing with perIP and
// total.
func newConnLimits(maxPerIP, max int, perIP, total *refusal) connLimits {
	return connLimits{maxPerIP: maxPerIP, max: max, perIP: make(map[netip.Addr]int), refusedPerIP: perIP, refusedTotal: total}
}

// enter takes a place for a connection from ip, or says why there is none.
// leave gives the place back; call it once.
func (l *connLimits) enter(ip netip.Addr) (leave func(), refused *refusal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.perIP[ip] >= l.maxPerIP:
		return nil, l.refusedPerIP
	case l.total >= l.max:
		return nil, l.refusedTotal
	}
	l.perIP[ip]++
	l.total++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.total--
		if l.perIP[ip]--; l.perIP[ip] <= 0 {
			delete(l.perIP, ip)
		}
	}, nil
}

// admitConn takes a place for a new session under the per-transport limits:
// QUIC sessions, and WebTransport's, which are QUIC connections on the same
// port, count towards MaxConnsPerIP and MaxConns, and WebSocket sessions
// towards limits of the same size of their own (TCP proved the address);
// KCP's listener applies its own in its handshake, before a session exists.
func (s *Server) admitConn(sess transport.Session) (leave func(), refused *refusal) {
	switch sess.(type) {
	case *quic.Session, *webtransport.Session:
		return s.quicConns.enter(transport.IP(sess.RemoteAddr()))
	case *websocket.Session:
		return s.wsConns.enter(transport.IP(sess.RemoteAddr()))
	}
	return func() {}, nil
}

// refuse closes a session the admission limits refused, before anything of
// the connection started: its client reads code 6 and the reason, in the
// transport's own close (QUIC CONNECTION_CLOSE, KCP DISCONNECT).
func (s *Server) refuse(sess transport.Session, r *refusal) {
	s.Drop(r.drop)
	s.metrics.handshakesFailed.Add(1)
	s.metrics.closes.Add(closeName(CloseRefused), 1)
	s.cfg.Logger.Debug("connection refused", "remote", sess.RemoteAddr(), "reason", r.reason)
	_ = sess.Close(uint16(CloseRefused), r.reason)
}

// kcpConfig is the KCP listener's configuration: Config.KCP, with the
// token key and protocol id of Tokens and the admission limits for any
// field it leaves zero.
func (c *Config) kcpConfig() kcp.Config {
	kc := c.KCP
	kc.Key, kc.ProtocolID = c.Tokens.Key, c.Tokens.ProtocolID
	if kc.MaxClients <= 0 {
		kc.MaxClients = c.MaxConns
	}
	if kc.MaxClientsPerIP <= 0 {
		kc.MaxClientsPerIP = c.MaxConnsPerIP
	}
	if kc.MaxTokenLifetime <= 0 {
		kc.MaxTokenLifetime = c.MaxTokenLifetime
	}
	if kc.MaxTokens <= 0 {
		kc.MaxTokens = c.MaxTokens
	}
	if kc.MaxTokensPerIP <= 0 {
		kc.MaxTokensPerIP = c.MaxTokensPerIP
	}
	return kc
}
