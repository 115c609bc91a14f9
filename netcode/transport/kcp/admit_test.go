package kcp

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport/secure"
)

// The tests of the admission limits: what one address can take of a
// listener. Each attack runs from one source and then an honest client must
// get in quickly.

// honestConnectWithin dials l with a fresh token from 127.0.0.1 and fails
// unless the session is confirmed within d; it returns how long it took.
func honestConnectWithin(t *testing.T, l *Listener, d time.Duration) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	s, err := Dial(ctx, l.Addr().String(), testToken(t, token.DevKey, time.Minute), Config{HandshakeTimeout: 3 * time.Second})
	took := time.Since(start)
	require.NoError(t, err, "the honest client gets in (after %v)", took)
	s.Close(0, "test over")
	s.Wait()
	require.Less(t, took, d, "the honest client gets in quickly")
	return took
}

// socketFrom is a UDP socket bound to ip, aimed at l.
func socketFrom(t *testing.T, l *Listener, ip string) *net.UDPConn {
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)}, l.Addr().(*net.UDPAddr))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rawHandshake runs REQUEST → CHALLENGE → RESPONSE by hand on c and returns
// the type of the server's last answer: KEEPALIVE (admitted) or DENIED.
func rawHandshake(t *testing.T, c *net.UDPConn, tok *token.ConnectToken) secure.PacketType {
	t.Helper()
	_, err := c.Write(secure.AppendRequest(nil, tok))
	require.NoError(t, err)
	hs := secure.NewOpener(tok.ServerToClient, testProtocol)
	p := answer(c, 2*time.Second)
	require.NotNil(t, p, "an answer to the REQUEST")
	typ, payload, err := hs.Open(nil, p)
	require.NoError(t, err)
	if typ == secure.PacketDenied {
		return typ
	}
	require.Equal(t, secure.PacketChallenge, typ)
	_, err = c.Write(append([]byte{byte(secure.PacketResponse)}, payload...))
	require.NoError(t, err)
	p = answer(c, 2*time.Second)
	require.NotNil(t, p, "an answer to the RESPONSE")
	if seq, _ := secure.SeqOf(p); secure.IsHandshakeSeq(seq) {
		hs.Replay = secure.Replay{}
		typ, _, err = hs.Open(nil, p)
		require.NoError(t, err)
		return typ // DENIED
	}
	return secure.PacketKeepAlive // sealed with the session key: the confirmation
}

// drainAccepts accepts sessions until the listener closes, as a server
// would, and keeps them open.
func drainAccepts(t *testing.T, l *Listener) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := l.Accept(context.Background()); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { _ = l.Close(); <-done })
}

// 10 000 REQUESTs with fresh tokens from one socket, never answered, fill
// no table: a token is remembered only once its address is proven.
func TestRequestFloodFillsNoTable(t *testing.T) {
	l := listen(t, Config{})
	raw := rawSocket(t, l)
	const n = 10000
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < n; i++ {
		_, err := raw.Write(secure.AppendRequest(nil, testToken(t, token.DevKey, time.Minute)))
		require.NoError(t, err)
		// Keep within the listener's socket buffer: a lost REQUEST would
		// make the flood smaller than it claims.
		for uint64(i+1)-l.Stats().Received > 64 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Microsecond)
		}
	}
	require.Eventually(t, func() bool { return l.Stats().Received >= n }, 10*time.Second, 5*time.Millisecond,
		"the listener read the flood: %+v", l.Stats())
	st := l.Stats()
	require.Zero(t, st.TokensRemembered, "no REQUEST is remembered")
	require.Zero(t, st.Sessions)
	require.GreaterOrEqual(t, st.Challenges, uint64(n*99/100), "every REQUEST was challenged: %+v", st)
	took := honestConnectWithin(t, l, time.Second)
	t.Logf("after %d REQUESTs from one socket: honest KCP connect in %v; %+v", n, took, l.Stats())
	require.Equal(t, 1, l.Stats().TokensRemembered, "the honest client's token, proven")
}

// 1 100 sessions opened from 127.0.0.2 take at most MaxClientsPerIP places;
// a client from 127.0.0.1 still gets in at once.
func TestSessionFloodFromOneIP(t *testing.T) {
	l := listen(t, Config{}) // defaults: 1024 clients, 64 per IP
	drainAccepts(t, l)
	const n = 1100
	admitted, denied := 0, 0
	for i := 0; i < n; i++ {
		switch rawHandshake(t, socketFrom(t, l, "127.0.0.2"), testToken(t, token.DevKey, time.Minute)) {
		case secure.PacketKeepAlive:
			admitted++
		case secure.PacketDenied:
			denied++
		}
	}
	st := l.Stats()
	require.Equal(t, 64, admitted, "MaxClientsPerIP sessions from one IP")
	require.Equal(t, n-64, denied)
	require.EqualValues(t, n-64, st.DeniedPerIP, "every refusal counted: %+v", st)
	require.EqualValues(t, n-64, st.Denied)
	require.Equal(t, 64, st.Sessions)
	took := honestConnectWithin(t, l, time.Second)
	t.Logf("after %d sessions from 127.0.0.2: honest KCP connect from 127.0.0.1 in %v; %+v", n, took, l.Stats())
}

// A session that ends frees its address's place.
func TestPerIPPlaceFreedOnClose(t *testing.T) {
	l := listen(t, Config{MaxClientsPerIP: 1})
	c := socketFrom(t, l, "127.0.0.2")
	require.Equal(t, secure.PacketKeepAlive, rawHandshake(t, c, testToken(t, token.DevKey, time.Minute)))
	s := accept(t, l)
	require.Equal(t, secure.PacketDenied, rawHandshake(t, socketFrom(t, l, "127.0.0.2"), testToken(t, token.DevKey, time.Minute)))
	// A restart on the same address replaces its session: no second place.
	require.Equal(t, secure.PacketKeepAlive, rawHandshake(t, c, testToken(t, token.DevKey, time.Minute)))
	<-s.Done()
	s2 := accept(t, l)
	s2.Close(0, "bye")
	require.Eventually(t, func() bool { return l.Stats().Sessions == 0 }, 2*time.Second, 5*time.Millisecond)
	require.Equal(t, secure.PacketKeepAlive, rawHandshake(t, socketFrom(t, l, "127.0.0.2"), testToken(t, token.DevKey, time.Minute)))
	accept(t, l).Close(0, "bye")
}

// The token table's caps answer DENIED, for that address only.
func TestTokenTableCapsDeny(t *testing.T) {
	l := listen(t, Config{MaxTokensPerIP: 2, MaxTokens: 3})
	drainAccepts(t, l)
	for range 2 {
		require.Equal(t, secure.PacketKeepAlive, rawHandshake(t, socketFrom(t, l, "127.0.0.2"), testToken(t, token.DevKey, time.Minute)))
	}
	require.Equal(t, secure.PacketDenied, rawHandshake(t, socketFrom(t, l, "127.0.0.2"), testToken(t, token.DevKey, time.Minute)))
	require.EqualValues(t, 1, l.Stats().DeniedTokensPerIP)
	require.Equal(t, secure.PacketKeepAlive, rawHandshake(t, socketFrom(t, l, "127.0.0.3"), testToken(t, token.DevKey, time.Minute)), "another address goes on")
	require.Equal(t, secure.PacketDenied, rawHandshake(t, socketFrom(t, l, "127.0.0.4"), testToken(t, token.DevKey, time.Minute)))
	st := l.Stats()
	require.EqualValues(t, 1, st.DeniedTokenTable, "%+v", st)
	require.Equal(t, 3, st.TokensRemembered)
}

// A token that expires too far ahead is dropped like any bad token; one
// that asks for a long session timeout gets the listener's cap.
func TestTokenLifetimeAndTimeoutCaps(t *testing.T) {
	l := listen(t, Config{MaxTokenLifetime: time.Minute, MaxSessionTimeout: 2 * time.Second})
	long, err := token.Issue(token.DevKey, token.Params{ProtocolID: testProtocol, TTL: time.Hour}, time.Now())
	require.NoError(t, err)
	raw := rawSocket(t, l)
	_, err = raw.Write(secure.AppendRequest(nil, long))
	require.NoError(t, err)
	require.Nil(t, answer(raw, 200*time.Millisecond), "a token living an hour is not answered")
	require.EqualValues(t, 1, l.Stats().DroppedLifetime)

	tok, err := token.Issue(token.DevKey, token.Params{ProtocolID: testProtocol, TTL: time.Minute, Timeout: time.Hour}, time.Now())
	require.NoError(t, err)
	c := dial(t, l, tok)
	s := accept(t, l)
	require.Equal(t, 2*time.Second, s.timeout, "the server's cap, not the token's hour")
	require.Equal(t, 15*time.Second, c.timeout, "the dialled side caps it too, by its own default")

	for _, tc := range []struct {
		cfg        Config
		token      time.Duration
		want       time.Duration
		whatPolicy string
	}{
		{Config{}, 10 * time.Second, 10 * time.Second, "a token's timeout under the cap"},
		{Config{}, time.Hour, 15 * time.Second, "the default cap"},
		{Config{}, 0, 10 * time.Second, "no timeout in the token"},
		{Config{MaxSessionTimeout: 3 * time.Second}, 0, 3 * time.Second, "no timeout, a cap below 10 s"},
		{Config{Timeout: time.Minute}, time.Hour, time.Minute, "an explicit Timeout wins"},
	} {
		tc.cfg.populate()
		require.Equal(t, tc.want, sessionTimeout(&tc.cfg, tc.token), tc.whatPolicy)
	}
}

// A token is bound to the first address that completes a handshake with
// it; until then two addresses may both be challenged, and the first
// RESPONSE wins.
func TestTokenBoundAtResponse(t *testing.T) {
	l := listen(t, Config{})
	tok := testToken(t, token.DevKey, time.Minute)
	first, second := rawSocket(t, l), rawSocket(t, l)
	req := secure.AppendRequest(nil, tok)
	challenge := func(c *net.UDPConn) []byte {
		_, err := c.Write(req)
		require.NoError(t, err)
		p := answer(c, 2*time.Second)
		require.NotNil(t, p, "challenged")
		_, ch, err := secure.NewOpener(tok.ServerToClient, testProtocol).Open(nil, p)
		require.NoError(t, err)
		return append([]byte{byte(secure.PacketResponse)}, ch...)
	}
	r1, r2 := challenge(first), challenge(second)
	require.Zero(t, l.Stats().TokensRemembered, "a REQUEST binds nothing")
	_, err := second.Write(r2)
	require.NoError(t, err)
	require.NotNil(t, answer(second, 2*time.Second), "the first RESPONSE is admitted")
	_, err = first.Write(r1)
	require.NoError(t, err)
	require.Nil(t, answer(first, 200*time.Millisecond), "the token is bound to the other address now")
	require.EqualValues(t, 1, l.Stats().DroppedReuse)
	_, err = first.Write(req)
	require.NoError(t, err)
	require.Nil(t, answer(first, 200*time.Millisecond), "and a REQUEST from elsewhere is dropped too")
	require.EqualValues(t, 2, l.Stats().DroppedReuse)
	require.Equal(t, 1, l.Stats().TokensRemembered)
	accept(t, l).Close(0, "bye")
}
