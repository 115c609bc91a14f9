package kcp

import (
	"context"
	"math/rand/v2"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport/secure"
)

// rawSocket is a bare UDP socket aimed at the listener, for packets made by
// hand.
func rawSocket(t *testing.T, l *Listener) *net.UDPConn {
	c, err := net.DialUDP("udp", nil, l.Addr().(*net.UDPAddr))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// answer reads one packet within d, or returns nil.
func answer(c *net.UDPConn, d time.Duration) []byte {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func TestTamperedAndReplayedPacketsAreDropped(t *testing.T) {
	l := listen(t, Config{})
	c := dial(t, l, testToken(t, token.DevKey, time.Minute))
	s := accept(t, l)

	good := c.sealer.Seal(nil, secure.PacketDatagram, []byte("one"))
	bad := c.sealer.Seal(nil, secure.PacketDatagram, []byte("two"))
	bad[len(bad)-3] ^= 0x01
	require.NoError(t, c.send(bad))
	require.NoError(t, c.send(good))
	require.NoError(t, c.send(good)) // a replay

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := s.ReceiveDatagram(ctx)
	require.NoError(t, err)
	require.Equal(t, "one", string(d), "the tampered packet never arrives")
	require.Eventually(t, func() bool { return s.Stats().Dropped == 2 }, 5*time.Second, 5*time.Millisecond,
		"tampered and replayed packets counted: %+v", s.Stats())
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	_, err = s.ReceiveDatagram(short)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the replay is delivered no second time")

	// The session goes on.
	require.NoError(t, c.SendDatagram([]byte("three")))
	d, err = s.ReceiveDatagram(ctx)
	require.NoError(t, err)
	require.Equal(t, "three", string(d))
}

func TestBadTokensGetNoAnswer(t *testing.T) {
	l := listen(t, Config{})
	expired, err := token.Issue(token.DevKey, token.Params{ProtocolID: testProtocol, TTL: time.Second}, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	foreign := testToken(t, token.NewKey(), time.Minute)
	otherGame, err := token.Issue(token.DevKey, token.Params{ProtocolID: testProtocol + 1}, time.Now())
	require.NoError(t, err)
	for name, tok := range map[string]*token.ConnectToken{"expired": expired, "foreign key": foreign, "other protocol": otherGame} {
		t.Run(name, func(t *testing.T) {
			raw := rawSocket(t, l)
			_, err := raw.Write(secure.AppendRequest(nil, tok))
			require.NoError(t, err)
			require.Nil(t, answer(raw, 200*time.Millisecond), "a bad token is never answered")

			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err = Dial(ctx, l.Addr().String(), tok, Config{HandshakeTimeout: 300 * time.Millisecond})
			require.ErrorIs(t, err, ErrNoAnswer)
		})
	}
	st := l.Stats()
	require.GreaterOrEqual(t, st.DroppedToken, uint64(6), "each bad request counted")
	require.Less(t, st.DroppedToken, uint64(30), "a client resends its request every 100 ms, no faster")
	require.Zero(t, st.Challenges)
	require.Zero(t, st.Sessions)
}

func TestFullServerDenies(t *testing.T) {
	l := listen(t, Config{MaxClients: 1})
	dial(t, l, testToken(t, token.DevKey, time.Minute))
	accept(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Dial(ctx, l.Addr().String(), testToken(t, token.DevKey, time.Minute), Config{})
	require.ErrorIs(t, err, ErrDenied)
}

func TestGarbageGetsNoAnswerNoSessionNoMemory(t *testing.T) {
	l := listen(t, Config{})
	raw := rawSocket(t, l)
	rng := rand.New(rand.NewPCG(1, 2))
	tok := testToken(t, token.DevKey, time.Minute)
	valid := secure.AppendRequest(nil, tok)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 10000
	buf := make([]byte, 1500)
	for i := 0; i < n; i++ {
		size := rng.IntN(len(buf))
		p := buf[:size]
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		switch i % 4 {
		case 0: // a REQUEST-sized packet with a broken token
			p = append(buf[:0], valid...)
			p[1+rng.IntN(len(p)-1)] ^= 0xff
		case 1: // a RESPONSE-sized packet of noise
			p = buf[:secure.ResponseSize]
			p[0] = byte(secure.PacketResponse)
		case 2: // noise claiming a sealed type
			if size > 0 {
				p[0] = byte(secure.PacketKCP + secure.PacketType(rng.IntN(3)))
			}
		}
		_, _ = raw.Write(p)
		if i%500 == 0 {
			time.Sleep(time.Millisecond) // stay within the socket buffer
		}
	}
	require.Eventually(t, func() bool { return l.Stats().Received >= n*9/10 }, 10*time.Second, 10*time.Millisecond,
		"the listener read the flood: %+v", l.Stats())
	require.Nil(t, answer(raw, 300*time.Millisecond), "garbage is never answered")
	st := l.Stats()
	require.Zero(t, st.Sessions)
	require.Zero(t, st.Challenges)
	require.Zero(t, st.TokensRemembered)

	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	require.Less(t, int64(after.HeapAlloc)-int64(before.HeapAlloc), int64(1<<20), "memory stays flat")
}

func TestSpoofedRequestsGetNoStateAndNoAmplification(t *testing.T) {
	// Loopback cannot forge source addresses, so many sockets stand in for
	// spoofed ones: each sends a valid REQUEST and never answers the
	// CHALLENGE, as a victim of spoofing would not.
	l := listen(t, Config{})
	const n = 100
	socks := make([]*net.UDPConn, n)
	for i := range socks {
		socks[i] = rawSocket(t, l)
		req := secure.AppendRequest(nil, testToken(t, token.DevKey, time.Minute))
		_, err := socks[i].Write(req)
		require.NoError(t, err)
	}
	for i, s := range socks {
		a := answer(s, 2*time.Second)
		require.NotNil(t, a, "socket %d challenged", i)
		require.Less(t, len(a), secure.RequestSize, "never more bytes back than sent")
		require.Nil(t, answer(s, 10*time.Millisecond), "one answer per request")
	}
	st := l.Stats()
	require.Zero(t, st.Sessions, "no session without a response")
	require.EqualValues(t, n, st.Challenges)
	require.Zero(t, st.TokensRemembered, "a REQUEST leaves no state at all")
}

// A captured RESPONSE replayed later admits nobody: challenges are
// single-use. A client that restarts on the same address gets a fresh
// session with fresh keys, replacing its dead one.
func TestChallengesAreSingleUseAndRestartsReplace(t *testing.T) {
	l := listen(t, Config{MaxClients: 1}) // full once the first is in: a restart must still get through
	tok := testToken(t, token.DevKey, time.Minute)
	raw := rawSocket(t, l)
	_, err := raw.Write(secure.AppendRequest(nil, tok))
	require.NoError(t, err)
	ch := answer(raw, 2*time.Second)
	require.NotNil(t, ch)
	op := secure.NewOpener(tok.ServerToClient, testProtocol)
	typ, challenge, err := op.Open(nil, ch)
	require.NoError(t, err)
	require.Equal(t, secure.PacketChallenge, typ)
	response := append([]byte{byte(secure.PacketResponse)}, challenge...)
	_, err = raw.Write(response)
	require.NoError(t, err)
	require.NotNil(t, answer(raw, 2*time.Second), "admitted: a KEEPALIVE confirms")
	first := accept(t, l)

	// The same RESPONSE again is the session's own: a KEEPALIVE, nothing new.
	_, err = raw.Write(response)
	require.NoError(t, err)
	require.NotNil(t, answer(raw, 2*time.Second))
	require.EqualValues(t, 1, l.Stats().Accepted)

	// The client restarts on the same address: a new REQUEST and RESPONSE
	// replace the old session, under keys of its own.
	_, err = raw.Write(secure.AppendRequest(nil, tok))
	require.NoError(t, err)
	ch2 := answer(raw, 2*time.Second)
	_, challenge2, err := secure.NewOpener(tok.ServerToClient, testProtocol).Open(nil, ch2)
	require.NoError(t, err)
	require.NotEqual(t, challenge, challenge2)
	_, err = raw.Write(append([]byte{byte(secure.PacketResponse)}, challenge2...))
	require.NoError(t, err)
	second := accept(t, l)
	<-first.Done()
	require.Contains(t, first.err().Error(), "replaced")
	c2s1, _ := secure.SessionKeys(tok.ClientToServer, tok.ServerToClient, challenge)
	c2s2, _ := secure.SessionKeys(tok.ClientToServer, tok.ServerToClient, challenge2)
	require.NotEqual(t, c2s1, c2s2, "each session has keys of its own")

	// The first session's RESPONSE, replayed now, admits nobody.
	before := l.Stats().DroppedChallenge
	_, err = raw.Write(response)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return l.Stats().DroppedChallenge == before+1 }, 2*time.Second, 5*time.Millisecond)
	require.EqualValues(t, 2, l.Stats().Accepted)
	second.Close(0, "done")
}
