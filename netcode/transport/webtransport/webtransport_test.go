package webtransport_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"
	wtgo "github.com/quic-go/webtransport-go"
	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/quic"
	"github.com/roomwire/roomwire/netcode/transport/webtransport"
	"github.com/roomwire/roomwire/reliable"
	"github.com/roomwire/roomwire/rooms"
	"github.com/roomwire/roomwire/rooms/arena"
	"github.com/roomwire/roomwire/unreliable"
)

func TestMain(m *testing.M) { nt.VerifyTestMain(m) }

// logBuffer collects a logger's lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func devTLS(t *testing.T) *tls.Config {
	tc, err := netcode.DevTLSConfig()
	require.NoError(t, err)
	return tc
}

// listen runs a bare listener pair whose sessions, native and WebTransport,
// arrive on the returned channel.
func listen(t *testing.T, cfg webtransport.Config) (*webtransport.Listener, <-chan transport.Session) {
	t.Helper()
	l, err := webtransport.Listen("127.0.0.1:0", devTLS(t), quic.Config{}, cfg)
	require.NoError(t, err)
	got := make(chan transport.Session, 16)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, ln := range []transport.Listener{l.QUIC(), l} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				s, err := ln.Accept(ctx)
				if err != nil {
					return
				}
				got <- s
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		for len(got) > 0 {
			_ = (<-got).Close(0, "test over")
		}
		_ = l.QUIC().Close()
		_ = l.Close()
	})
	return l, got
}

var insecure = &tls.Config{InsecureSkipVerify: true}

func dial(t *testing.T, rawURL string, cfg webtransport.Config) (*webtransport.Session, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := webtransport.Dial(ctx, rawURL, insecure, cfg)
	if err == nil {
		t.Cleanup(func() { _ = s.Close(0, "test over"); s.Wait() })
	}
	return s, err
}

// A native QUIC client (ALPN roomwire/1) and a WebTransport client (h3)
// reach one server on one UDP port, with connect tokens (bound to the TLS
// exporter on QUIC, to the CHALLENGE on WebTransport), and play the arena
// together: each one's inputs move it in the snapshots both receive.
func TestALPNSharesTheQUICPort(t *testing.T) {
	var hub *rooms.Hub
	transports := make(chan string, 2)
	srv := nt.Server(t, nt.Find("webtransport"), &netcode.Config{
		Tokens: &netcode.Tokens{Key: token.DevKey, ProtocolID: nt.ProtocolID},
	}, func(s *netcode.Server) {
		hub = rooms.NewHub(s, rooms.HubOptions{})
		require.NoError(t, hub.Define(arena.Kind, func() rooms.Game { return arena.New() }, rooms.Options{TickRate: 30}))
		s.OnConnect(func(c *netcode.Conn) { transports <- c.Transport() })
	})
	t.Cleanup(hub.Close)

	quicAddr := srv.Addrs()[0].String()
	u, err := url.Parse(srv.WebTransportURL())
	require.NoError(t, err)
	require.Equal(t, quicAddr, u.Host, "WebTransport is served on the QUIC port")
	require.Equal(t, webtransport.Path, u.Path)

	connect := func(rawURL string) player {
		p := player{snaps: make(chan []arena.Player, 256)}
		cl := netcode.NewClient(netcode.ClientConfig{InsecureSkipVerify: true, Token: nt.Token()})
		cl.OnSnapshot(func(_ uint32, d []byte) {
			ps, err := arena.Decode(nil, d)
			if err == nil {
				select {
				case p.snaps <- ps:
				default:
				}
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, cl.Connect(ctx, rawURL))
		t.Cleanup(func() { _ = cl.Close() })
		p.Client = cl
		return p
	}
	native := connect("quic://" + quicAddr)
	browser := connect(srv.WebTransportURL())
	got := []string{nt.Recv(t, transports, "a connection"), nt.Recv(t, transports, "a connection")}
	require.ElementsMatch(t, []string{netcode.TransportQUIC, netcode.TransportWebTransport}, got)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, p := range []player{native, browser} {
		_, err := rooms.Join(ctx, p.Client, arena.Kind, "duel")
		require.NoError(t, err)
	}
	// Both see both players; then the native player moves right, the
	// browser's down, and both see both move.
	first := map[*player]map[netcode.ID]arena.Player{}
	for _, p := range []*player{&native, &browser} {
		nt.Eventually(t, func() bool {
			ps := p.next()
			if len(ps) != 2 {
				return false
			}
			first[p] = map[netcode.ID]arena.Player{ps[0].ID: ps[0], ps[1].ID: ps[1]}
			return true
		}, "both players in the snapshots")
	}
	moves := map[netcode.ID][2]int8{native.ID(): {127, 0}, browser.ID(): {0, 127}}
	for _, p := range []player{native, browser} {
		m := moves[p.ID()]
		require.NoError(t, p.SendInput(arena.EncodeInput(nil, m[0], m[1])))
	}
	for _, p := range []*player{&native, &browser} {
		nt.Eventually(t, func() bool {
			ps := p.next()
			moved := 0
			for _, q := range ps {
				m, was := moves[q.ID], first[p][q.ID]
				if (m[0] > 0 && q.X > was.X+10) || (m[1] > 0 && q.Y > was.Y+10) {
					moved++
				}
			}
			return moved == 2
		}, "both players move in the snapshots")
	}
}

// player is an arena player with the snapshots it received.
type player struct {
	*netcode.Client
	snaps chan []arena.Player
}

// next is the next snapshot's players, or nil after a while without one.
func (p *player) next() []arena.Player {
	select {
	case ps := <-p.snaps:
		return ps
	case <-time.After(100 * time.Millisecond):
		return nil
	}
}

// Pages from the allowed origins get a session, and native clients, which
// send no Origin; any other page is refused with 403, and the server logs
// why, which the page cannot see.
func TestOriginAllowList(t *testing.T) {
	var logs logBuffer
	l, sessions := listen(t, webtransport.Config{
		Origins: append(webtransport.DevOrigins(":8080"), "https://play.example.com"),
		Logger:  logs.logger(),
	})
	_, err := dial(t, l.URL(), webtransport.Config{Origin: "https://evil.example.com"})
	var se *webtransport.StatusError
	require.ErrorAs(t, err, &se)
	require.Equal(t, 403, se.StatusCode)
	require.Contains(t, logs.String(), "origin not allowed")
	require.Contains(t, logs.String(), "https://evil.example.com")

	for _, origin := range []string{"", "http://127.0.0.1:8080", "HTTP://LOCALHOST:8080", "https://play.example.com"} {
		s, err := dial(t, l.URL(), webtransport.Config{Origin: origin})
		require.NoError(t, err, "origin %q", origin)
		srvSide := nt.Recv(t, sessions, "the server's session")
		require.IsType(t, &webtransport.Session{}, srvSide)
		// The reliable stream works both ways.
		_, err = s.Write([]byte("ping"))
		require.NoError(t, err)
		b := make([]byte, 4)
		_, err = srvSide.Read(b)
		require.NoError(t, err)
		require.Equal(t, "ping", string(b))
		_ = srvSide.Close(uint16(reliable.CloseNormal), "bye")
	}

	_, err = dial(t, strings.Replace(l.URL(), webtransport.Path, "/elsewhere", 1), webtransport.Config{})
	require.ErrorAs(t, err, &se)
	require.Equal(t, 404, se.StatusCode)
}

// A datagram of MaxDatagram bytes crosses both ways; one byte more is
// refused at the sender; the WELCOME gives a netcode client that limit.
func TestDatagramLimit(t *testing.T) {
	l, sessions := listen(t, webtransport.Config{})
	cl, err := dial(t, l.URL(), webtransport.Config{})
	require.NoError(t, err)
	srvSide := nt.Recv(t, sessions, "the server's session")
	require.Equal(t, webtransport.MaxDatagram, cl.MaxDatagram())
	require.Equal(t, 1150, srvSide.MaxDatagram())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, pair := range [][2]transport.Session{{cl, srvSide}, {srvSide, cl}} {
		from, to := pair[0], pair[1]
		big := bytes.Repeat([]byte{0xab}, webtransport.MaxDatagram)
		var tooLarge *webtransport.DatagramTooLargeError
		require.ErrorAs(t, from.SendDatagram(append(big, 0)), &tooLarge)
		require.Equal(t, webtransport.MaxDatagram+1, tooLarge.Size)
		// Datagrams may be lost, even on loopback: send until one arrives.
		arrived := make(chan []byte, 1)
		go func() {
			d, err := to.ReceiveDatagram(ctx)
			if err == nil {
				arrived <- d
			}
		}()
		func() {
			for {
				require.NoError(t, from.SendDatagram(big))
				select {
				case d := <-arrived:
					require.Equal(t, big, d)
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
	}
	_ = srvSide.Close(0, "bye")

	// Through netcode: the client's unreliable events are limited to the
	// WELCOME's 1150 bytes, header included.
	srv := nt.Server(t, nt.Find("webtransport"), nil, nil)
	c := nt.Client(t, nt.Find("webtransport"), srv, nil)
	name := "e"
	fits := webtransport.MaxDatagram - unreliable.HeaderLen - unreliable.EventOverhead - len(name)
	require.NoError(t, c.EmitUnreliable(name, make([]byte, fits)))
	require.ErrorIs(t, c.EmitUnreliable(name, make([]byte, fits+1)), unreliable.ErrTooLarge)
}

// A client that opens a session but never its reliable stream is closed by
// netcode's handshake timeout: a browser reads the close code (5) and
// reason as the session's close code and message.
func TestSessionWithoutStreamTimesOut(t *testing.T) {
	srv := nt.Server(t, nt.Find("webtransport"), &netcode.Config{HandshakeTimeout: 300 * time.Millisecond}, nil)
	d := &wtgo.Transport{TLSClientConfig: insecure}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, sess, err := d.Dial(ctx, srv.WebTransportURL(), nil)
	require.NoError(t, err)
	defer sess.CloseWithError(0, "")
	_, err = sess.AcceptStream(ctx) // returns once the session is closed
	var se *wtgo.SessionError
	require.ErrorAs(t, err, &se)
	took := time.Since(start)
	require.True(t, se.Remote)
	require.EqualValues(t, reliable.CloseHandshakeTimeout, se.ErrorCode)
	require.Equal(t, "no HELLO accepted within 300ms", se.Message)
	require.Greater(t, took, 250*time.Millisecond)
	require.Less(t, took, 3*time.Second)
	nt.Eventually(t, func() bool { return srv.Metrics().HandshakesFailed == 1 }, "the failed handshake counted")
}

// An HTTP/3 connection that opens no session is closed after the
// listener's HandshakeTimeout, and logged with its cause; a failed TLS
// handshake of a browser (here: a client that offers h3 and refuses the
// certificate) is logged too. Native QUIC on the same port is untouched.
func TestConnectionsWithoutSessionsAreClosedAndLogged(t *testing.T) {
	var logs logBuffer
	l, sessions := listen(t, webtransport.Config{HandshakeTimeout: 200 * time.Millisecond, Logger: logs.logger()})
	addr := l.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	idle, err := quicgo.DialAddr(ctx, addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{webtransport.ALPN}},
		&quicgo.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true})
	require.NoError(t, err)
	select {
	case <-idle.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("an HTTP/3 connection without a session stayed open")
	}
	var ae *quicgo.ApplicationError
	require.ErrorAs(t, context.Cause(idle.Context()), &ae)
	require.Contains(t, ae.ErrorMessage, "no WebTransport session within 200ms")
	nt.Eventually(t, func() bool { return strings.Contains(logs.String(), "no WebTransport session within 200ms") }, "the cause logged: %s", logs.String())

	// A browser that does not trust the certificate aborts the handshake:
	// the page sees only "Opening handshake failed", the log the alert.
	_, err = quicgo.DialAddr(ctx, addr, &tls.Config{ServerName: "localhost", NextProtos: []string{webtransport.ALPN}}, &quicgo.Config{})
	require.Error(t, err)
	nt.Eventually(t, func() bool { return strings.Contains(logs.String(), "CRYPTO_ERROR") }, "the TLS alert logged: %s", logs.String())

	native, err := quic.Dial(ctx, addr, insecure, quic.Config{})
	require.NoError(t, err)
	defer native.Close(0, "")
	_, err = native.Write([]byte("hi"))
	require.NoError(t, err)
	s := nt.Recv(t, sessions, "the native session")
	require.IsType(t, &quic.Session{}, s)
	b := make([]byte, 2)
	_, err = s.Read(b)
	require.NoError(t, err)
	require.Equal(t, "hi", string(b))
}

// The server's close reaches the client on the reliable stream first, as
// a CLOSE frame and the stream's end (browsers read nothing else reliably,
// PROTOCOL.md 12.4), then, if the client does not close the session on it
// within a second, as the session's close code and message; either way a
// netcode client reads code and reason as a CloseError. A refusal before
// any frame gets a CLOSE frame too.
func TestCloseCodeAndReason(t *testing.T) {
	l, sessions := listen(t, webtransport.Config{})
	for _, wroteBefore := range []bool{true, false} {
		cl, err := dial(t, l.URL(), webtransport.Config{})
		require.NoError(t, err)
		srvSide := nt.Recv(t, sessions, "the server's session")
		r := reliable.NewReader(cl, 0)
		if wroteBefore {
			_, err = srvSide.Write(reliable.AppendPing(nil, 1))
			require.NoError(t, err)
			f, err := r.Next()
			require.NoError(t, err)
			require.Equal(t, reliable.FramePing, f.Type)
			_, err = srvSide.Write(reliable.AppendClose(nil, reliable.CloseKicked, "cheating"))
			require.NoError(t, err)
		}
		start := time.Now()
		require.NoError(t, srvSide.Close(uint16(reliable.CloseKicked), "cheating"))
		f, err := r.Next()
		require.NoError(t, err)
		require.Equal(t, reliable.FrameClose, f.Type)
		require.Equal(t, reliable.CloseKicked, f.Code)
		require.Equal(t, "cheating", string(f.Payload))
		_, err = r.Next()
		require.ErrorIs(t, err, io.EOF, "the stream ends after the CLOSE frame")

		// This client does not close: the session close follows.
		select {
		case <-cl.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the client's session did not end")
		}
		require.Greater(t, time.Since(start), 900*time.Millisecond, "the server waited for the client's close")
		_, err = cl.Read(make([]byte, 1))
		ce, ok := transport.AsCloseError(err)
		require.True(t, ok, "%v", err)
		require.Equal(t, transport.CloseError{Code: uint16(reliable.CloseKicked), Reason: "cheating", Remote: true}, *ce)
		require.True(t, errors.Is(err, net.ErrClosed))
		_, err = cl.ReceiveDatagram(context.Background())
		require.ErrorIs(t, err, net.ErrClosed)
	}

	// A client that closes on the CLOSE frame, as netcode's does, ends it at
	// once.
	srv := nt.Server(t, nt.Find("webtransport"), nil, nil)
	kicked := make(chan *netcode.CloseError, 1)
	c := nt.Client(t, nt.Find("webtransport"), srv, func(c *netcode.Client) {
		c.OnDisconnect(func(ce *netcode.CloseError) { kicked <- ce })
	})
	start := time.Now()
	srv.Conn(c.ID()).Close("cheating")
	ce := nt.Recv(t, kicked, "the kick")
	require.Equal(t, netcode.CloseKicked, ce.Code)
	require.Equal(t, "cheating", ce.Reason)
	nt.Eventually(t, func() bool { return srv.Conn(c.ID()) == nil }, "the server's connection ended")
	require.Less(t, time.Since(start), 500*time.Millisecond)
}
