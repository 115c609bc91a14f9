package websocket

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/reliable"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve mounts a listener with cfg on a test HTTP server (TLS with tlsOn)
// and returns it with its ws:// or wss:// URL.
func serve(t *testing.T, cfg Config, tlsOn bool) (*Listener, string) {
	t.Helper()
	var l *Listener
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { l.ServeHTTP(w, r) }))
	cfg.Addr = hs.Listener.Addr().String()
	l = NewListener(cfg) // before the server starts: its handler reads l
	scheme := "ws://"
	if tlsOn {
		hs.StartTLS()
		scheme = "wss://"
	} else {
		hs.Start()
	}
	t.Cleanup(func() {
		_ = l.Close()
		hs.Close()
	})
	return l, scheme + cfg.Addr + "/ws"
}

// pair connects a client to a listener with cfg and returns both sessions,
// closed and waited for when the test ends.
func pair(t *testing.T, cfg Config) (client, server *Session) {
	t.Helper()
	l, url := serve(t, cfg, false)
	return connect(t, l, url)
}

// connect dials l at url and returns both sessions, closed and waited for
// when the test ends.
func connect(t *testing.T, l *Listener, url string) (client, server *Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, url, Config{})
	require.NoError(t, err)
	s, err := l.Accept(ctx)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = c.Close(0, "test over")
		_ = s.Close(0, "test over")
		c.Wait()
		s.(*Session).Wait()
	})
	return c, s.(*Session)
}

func frame(body int) []byte {
	return append([]byte{byte(reliable.FrameEvent), byte(body >> 16), byte(body >> 8), byte(body)}, bytes.Repeat([]byte{'x'}, body)...)
}

func TestCut(t *testing.T) {
	small, big := frame(100), frame(messageChunk+10)
	cases := []struct {
		name string
		p    []byte
		want int
	}{
		{"one frame", small, len(small)},
		{"frames up to the chunk", bytes.Repeat(small, 3), 3 * len(small)},
		{"a frame longer than the chunk goes alone", append(append([]byte{}, big...), small...), len(big)},
		{"frames before a long one", append(append([]byte{}, small...), big...), len(small)},
		{"a partial header rides along", append(append([]byte{}, small...), 3, 0), len(small) + 2},
		{"a frame cut short", small[:50], 50},
		{"less than a header", []byte{1, 0}, 2},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, cut(tc.p), tc.name)
	}
	many := bytes.Repeat(small, 1000) // 104 000 bytes: whole frames up to the chunk each
	n := cut(many)
	require.LessOrEqual(t, n, messageChunk)
	require.Zero(t, n%len(small))
}

func TestCloseMapping(t *testing.T) {
	for code := uint16(0); code <= 11; code++ {
		st := closeStatus(code)
		require.Equal(t, websocket.StatusCode(4000+int(code)), st)
		require.Equal(t, reliable.CloseCode(code), closeCode(st))
	}
	require.Equal(t, websocket.StatusCode(4008), closeStatus(1000), "a code the status cannot carry")
	require.Equal(t, reliable.CloseNormal, closeCode(websocket.StatusNormalClosure))
	require.Equal(t, reliable.CloseGoingAway, closeCode(websocket.StatusGoingAway))
	require.Equal(t, reliable.CloseFrameTooLarge, closeCode(websocket.StatusMessageTooBig))
	require.Equal(t, reliable.CloseProtocolError, closeCode(websocket.StatusProtocolError))
	require.Equal(t, reliable.CloseInternal, closeCode(websocket.StatusInternalError))

	long := strings.Repeat("é", 100) // 200 bytes, two each
	r := closeReason(long)
	require.Len(t, r, 122, "cut before the rune that byte 123 belongs to")
	require.True(t, strings.HasPrefix(long, r))
	require.Equal(t, "cheating", closeReason("cheating"))
}

// Both channels both ways, a reliable write longer than a message, and the
// datagram limit.
func TestChannels(t *testing.T) {
	c, s := pair(t, Config{})
	require.Equal(t, MaxDatagram, c.MaxDatagram())
	var _ transport.Challenged = c

	stream := bytes.Repeat(frame(1000), 100) // 100 400 bytes: several messages
	go func() { _, _ = c.Write(stream) }()
	got := make([]byte, len(stream))
	_, err := io.ReadFull(s, got)
	require.NoError(t, err)
	require.Equal(t, stream, got)

	_, err = s.Write([]byte("back"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "back", string(buf))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A server's datagrams are read by its stream's reader, which netcode
	// always runs.
	go func() { _, _ = io.Copy(io.Discard, s) }()
	d := bytes.Repeat([]byte{7}, MaxDatagram)
	require.NoError(t, c.SendDatagram(d))
	got, err = s.ReceiveDatagram(ctx)
	require.NoError(t, err)
	require.Equal(t, d, got)
	require.NoError(t, s.SendDatagram([]byte("dg")))
	got, err = c.ReceiveDatagram(ctx)
	require.NoError(t, err)
	require.Equal(t, "dg", string(got))
	require.ErrorContains(t, c.SendDatagram(make([]byte, MaxDatagram+1)), "> 1200")
}

// A close carries code and reason to the peer, which reads the bytes sent
// before it first; every method then fails with a CloseError.
func TestClose(t *testing.T) {
	c, s := pair(t, Config{})
	_, err := s.Write([]byte("last words"))
	require.NoError(t, err)
	require.NoError(t, s.Close(uint16(reliable.CloseKicked), "cheating"))
	require.NoError(t, s.Close(0, "again"), "idempotent")

	buf := make([]byte, 10)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "last words", string(buf))
	_, err = c.Read(buf)
	ce, ok := transport.AsCloseError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, transport.CloseError{Code: uint16(reliable.CloseKicked), Reason: "cheating", Remote: true}, *ce)
	require.ErrorIs(t, err, net.ErrClosed)
	<-c.Done()
	require.Error(t, c.SendDatagram([]byte("x")))
	_, err = c.ReceiveDatagram(context.Background())
	require.ErrorIs(t, err, net.ErrClosed)

	_, err = s.Write([]byte("more"))
	ce, ok = transport.AsCloseError(err)
	require.True(t, ok)
	require.False(t, ce.Remote)
	require.Equal(t, "cheating", ce.Reason)
	done := make(chan struct{})
	go func() { s.Wait(); c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("the sessions' goroutines did not end")
	}
}

// The upgrade checks, each refused with its status; what passes them
// connects.
func TestUpgradeChecks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, url := serve(t, Config{Origins: []string{"http://game.example:8080/"}}, false)
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	status := func(offer string, header http.Header) int {
		c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc, Subprotocols: strings.Fields(offer), HTTPHeader: header})
		if err == nil {
			_ = c.CloseNow()
			return http.StatusSwitchingProtocols
		}
		require.NotNil(t, resp, "%v", err)
		return resp.StatusCode
	}
	require.Equal(t, http.StatusBadRequest, status("", nil), "no subprotocol")
	require.Equal(t, http.StatusBadRequest, status("chat", nil), "another subprotocol")
	require.Equal(t, http.StatusSwitchingProtocols, status("chat "+Subprotocol, nil))
	require.Equal(t, http.StatusForbidden, status(Subprotocol, http.Header{"Origin": {"http://evil.example"}}))
	require.Equal(t, http.StatusSwitchingProtocols, status(Subprotocol, http.Header{"Origin": {"HTTP://Game.Example:8080"}}))
	st := l.Stats()
	require.EqualValues(t, 2, st.RefusedSubprotocol)
	require.EqualValues(t, 1, st.RefusedOrigin)
	// The server counts an upgrade after its 101 went out, which the
	// client may have read already.
	require.Eventually(t, func() bool { return l.Stats().Upgrades == 2 }, 2*time.Second, time.Millisecond)

	// Plain ws:// is refused where the policy says so; wss:// is not.
	_, plainNever := serve(t, Config{Plain: PlainNever}, false)
	_, err := Dial(ctx, plainNever, Config{})
	require.ErrorContains(t, err, "403")
	require.ErrorContains(t, err, "use wss://")
	nl, secure := serve(t, Config{Plain: PlainNever}, true)
	s, err := Dial(ctx, secure, Config{TLS: &tls.Config{InsecureSkipVerify: true}})
	require.NoError(t, err)
	srv, err := nl.Accept(ctx)
	require.NoError(t, err)
	_ = s.Close(0, "")
	_ = srv.Close(0, "")
	s.Wait()
	srv.(*Session).Wait()
}

// Sending allocates nothing in steady state: a datagram, and reliable
// bytes of whole frames.
func TestSendAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	l, url := serve(t, Config{}, false)
	peer := rawPeer(t, url)
	go func() { // drains without allocating
		for {
			_, r, err := peer.Reader(context.Background())
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ts, err := l.Accept(ctx)
	require.NoError(t, err)
	s := ts.(*Session)
	defer func() { _ = s.Close(0, ""); s.Wait() }()
	d, f := make([]byte, 200), frame(200)
	require.Zero(t, testing.AllocsPerRun(200, func() { _ = s.SendDatagram(d) }), "SendDatagram")
	require.Zero(t, testing.AllocsPerRun(200, func() { _, _ = s.Write(f) }), "Write")
	require.Zero(t, testing.AllocsPerRun(200, func() { _, _ = s.TrySendDatagram(d) }), "TrySendDatagram")
}

// Receiving reliable bytes allocates nothing in steady state either: the
// reader's buffers are reused.
func TestReceiveAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	c, s := pair(t, Config{})
	f := frame(200)
	got := make([]byte, len(f))
	require.Zero(t, testing.AllocsPerRun(200, func() {
		_, _ = c.Write(f)
		_, _ = io.ReadFull(s, got)
	}))
}

// Config.NetDial makes the connection Dial runs over, in place of its own
// dialer.
func TestNetDial(t *testing.T) {
	l, url := serve(t, Config{}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var dialled []string
	var d net.Dialer
	c, err := Dial(ctx, url, Config{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialled = append(dialled, network+" "+addr)
		return d.DialContext(ctx, network, addr)
	}})
	require.NoError(t, err)
	s, err := l.Accept(ctx)
	require.NoError(t, err)
	defer func() {
		_ = c.Close(0, "test over")
		_ = s.Close(0, "test over")
		c.Wait()
		s.(*Session).Wait()
	}()
	require.Equal(t, []string{"tcp " + l.Addr().String()}, dialled)
	_, err = c.Write(frame(3))
	require.NoError(t, err)
	got := make([]byte, len(frame(3)))
	_, err = io.ReadFull(s, got)
	require.NoError(t, err)
	require.Equal(t, frame(3), got)
}
