package kcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport/secure"
)

// resendInterval is how often a client repeats its REQUEST or RESPONSE
// until the server answers.
const resendInterval = 100 * time.Millisecond

// Errors of dialling.
var (
	// ErrDenied means the server answered the token with DENIED: it is
	// full, or has as many sessions or tokens from this IP address as it
	// takes from one.
	ErrDenied = errors.New("kcp: server denied the connection: server full, or too many connections from this address")
	// ErrNoAnswer means the server never answered. A server drops, without
	// a word, tokens that are expired, forged, for another protocol id,
	// used from another address or expiring too far in the future, so any
	// of those looks like this.
	ErrNoAnswer = errors.New("kcp: no answer from server (expired, foreign or too long-lived token, wrong key or protocol id, or server down)")
)

// Dial connects to the server at addr (host:port) with a connect token.
func Dial(ctx context.Context, addr string, tok *token.ConnectToken, cfg Config) (*Session, error) {
	cfg.populate()
	if tok == nil {
		return nil, errors.New("kcp: dial: a connect token is required")
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("kcp: dial %s: %w", addr, err)
	}
	var local *net.UDPAddr
	if cfg.LocalAddr != "" {
		if local, err = net.ResolveUDPAddr("udp", cfg.LocalAddr); err != nil {
			return nil, fmt.Errorf("kcp: local address: %w", err)
		}
	}
	conn, err := net.ListenUDP("udp", local)
	if err != nil {
		return nil, fmt.Errorf("kcp: dial %s: %w", addr, err)
	}
	return DialConn(ctx, conn, ua.AddrPort(), tok, cfg)
}

// DialConn is Dial over a socket the caller made, which the session then
// owns (and closes, also when the handshake fails).
func DialConn(ctx context.Context, conn PacketConn, remote netip.AddrPort, tok *token.ConnectToken, cfg Config) (*Session, error) {
	cfg.populate()
	if tok == nil {
		_ = conn.Close()
		return nil, errors.New("kcp: dial: a connect token is required")
	}
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	s, err := handshake(ctx, conn, remote, tok, &cfg)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return s, nil
}

// readFrom reads the next packet from remote, skipping any other sender's.
func readFrom(conn PacketConn, remote netip.AddrPort, buf []byte) (int, error) {
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return 0, err
		}
		if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) == remote {
			return n, nil
		}
	}
}

// handshake runs request → challenge → response on conn and returns the
// session once the server confirmed it, with its goroutines running.
func handshake(ctx context.Context, conn PacketConn, remote netip.AddrPort, tok *token.ConnectToken, cfg *Config) (*Session, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	defer cancel()
	request := secure.AppendRequest(make([]byte, 0, secure.RequestSize), tok)
	hsOpener := secure.NewOpener(tok.ServerToClient, tok.ProtocolID)
	var opener *secure.Opener // the session's, once challenged
	var c2s token.Key
	var response []byte // set once challenged
	buf := make([]byte, 2048)
	scratch := make([]byte, secure.MaxPacket)
	for {
		out := request
		if response != nil {
			out = response
		}
		if _, err := conn.WriteToUDPAddrPort(out, remote); err != nil {
			return nil, fmt.Errorf("kcp: handshake: %w", err)
		}
		end, _ := ctx.Deadline() // set: the handshake timeout at least
		if !time.Now().Before(end) {
			if response == nil {
				return nil, ErrNoAnswer
			}
			return nil, fmt.Errorf("kcp: challenged but never confirmed: %w", ErrNoAnswer)
		}
		deadline := time.Now().Add(resendInterval)
		if end.Before(deadline) {
			deadline = end
		}
		_ = conn.SetReadDeadline(deadline)
		for {
			n, err := readFrom(conn, remote, buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // resend
				}
				if errors.Is(err, net.ErrClosed) {
					return nil, err
				}
				continue // ICMP port unreachable and the like: keep trying
			}
			p := buf[:n]
			seq, ok := secure.SeqOf(p)
			if !ok {
				continue
			}
			if secure.IsHandshakeSeq(seq) {
				// Handshake sequence numbers are random, not counting:
				// no replay window applies to them.
				hsOpener.Replay = secure.Replay{}
				t, payload, err := hsOpener.Open(scratch[:0], p)
				if err != nil {
					continue
				}
				switch t {
				case secure.PacketDenied:
					return nil, ErrDenied
				case secure.PacketChallenge:
					if len(payload) == secure.ChallengeSize && response == nil {
						response = append([]byte{byte(secure.PacketResponse)}, payload...)
						var s2c token.Key
						c2s, s2c = secure.SessionKeys(tok.ClientToServer, tok.ServerToClient, payload)
						opener = secure.NewOpener(s2c, tok.ProtocolID)
						if _, err := conn.WriteToUDPAddrPort(response, remote); err != nil { // at once, not at the next resend
							return nil, fmt.Errorf("kcp: handshake: %w", err)
						}
					}
				}
				continue
			}
			if response == nil {
				continue
			}
			// A session packet: the server admitted us.
			t, _, err := opener.Open(scratch[:0], p)
			if err != nil || t != secure.PacketKeepAlive {
				continue
			}
			_ = conn.SetReadDeadline(time.Time{})
			return startClient(conn, remote, tok, c2s, opener, cfg), nil
		}
		if ctx.Err() != nil && time.Now().Before(end) {
			return nil, ctx.Err() // the caller gave up early
		}
	}
}

// startClient makes the session and starts its reader and timer
// goroutines. Both end once the session ended: its onClose closes the
// socket and stops the timers.
func startClient(conn PacketConn, remote netip.AddrPort, tok *token.ConnectToken, c2s token.Key, opener *secure.Opener, cfg *Config) *Session {
	claims := &token.Claims{
		ProtocolID: tok.ProtocolID, Expires: tok.Expires, Timeout: tok.Timeout,
		ClientToServer: tok.ClientToServer, ServerToClient: tok.ServerToClient,
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	s := newSession(cfg, conn, newBatchWriter(conn), newTimers(), remote, claims,
		secure.NewSealer(c2s, tok.ProtocolID), opener,
		func(*Session) {
			close(stop)
			_ = conn.Close()
			// The goroutines end on the closed socket and stop channel;
			// they are not waited for here since shut may run on them.
		})
	s.wait = wg.Wait
	// The client answers the server's keepalives (8.6) and sends its own
	// only after half as long again without either.
	s.answerKeepAlive, s.keep = true, cfg.KeepAlive*3/2
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, packetBuf)
		scratch := make([]byte, secure.MaxPacket)
		for {
			n, err := readFrom(conn, remote, buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			p := buf[:n]
			if seq, ok := secure.SeqOf(p); !ok || secure.IsHandshakeSeq(seq) || n > secure.MaxPacket {
				continue // late CHALLENGE copies, or too long to be a packet
			}
			s.handle(p, scratch, time.Now().UnixNano(), nil)
		}
	}()
	go func() {
		defer wg.Done()
		s.timers.run(stop, nil, func(now time.Time, _ *outbox) { s.tick(now, nil) })
	}()
	return s
}
