package kcp

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
)

const testProtocol = 0x5257

func testToken(t testing.TB, key token.Key, ttl time.Duration) *token.ConnectToken {
	tok, err := token.Issue(key, token.Params{ProtocolID: testProtocol, ClientID: 7, UserData: []byte("alice"), TTL: ttl}, time.Now())
	require.NoError(t, err)
	return tok
}

func listen(t testing.TB, cfg Config) *Listener {
	if cfg.Key == (token.Key{}) {
		cfg.Key = token.DevKey
	}
	cfg.ProtocolID = testProtocol
	l, err := Listen("127.0.0.1:0", cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func dial(t testing.TB, l *Listener, tok *token.ConnectToken) *Session {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := Dial(ctx, l.Addr().String(), tok, Config{})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close(0, "test over"); s.Wait() })
	return s
}

func accept(t testing.TB, l *Listener) *Session {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := l.Accept(ctx)
	require.NoError(t, err)
	return s.(*Session)
}

func TestStreamAndDatagrams(t *testing.T) {
	l := listen(t, Config{})
	c := dial(t, l, testToken(t, token.DevKey, time.Minute))
	s := accept(t, l)
	require.Equal(t, uint64(7), s.TokenClaims().ClientID)
	require.Equal(t, "alice", string(s.TokenClaims().UserData))

	msg := bytes.Repeat([]byte("roomwire"), 20000) // 160 KB: many segments
	go func() { _, _ = c.Write(msg) }()
	got := make([]byte, len(msg))
	_, err := io.ReadFull(s, got)
	require.NoError(t, err)
	require.Equal(t, msg, got)

	require.NoError(t, s.SendDatagram([]byte("snapshot")))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := c.ReceiveDatagram(ctx)
	require.NoError(t, err)
	require.Equal(t, "snapshot", string(d))
	require.Error(t, c.SendDatagram(make([]byte, 1200)), "a datagram over one packet is refused")
}

func TestCloseReasonReachesPeer(t *testing.T) {
	l := listen(t, Config{})
	c := dial(t, l, testToken(t, token.DevKey, time.Minute))
	s := accept(t, l)
	require.NoError(t, s.Close(9, "kicked for spam"))
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client never learned of the close")
	}
	_, err := c.Read(make([]byte, 10))
	ce, ok := transport.AsCloseError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, uint16(9), ce.Code)
	require.Equal(t, "kicked for spam", ce.Reason)
	require.True(t, ce.Remote)
}

func TestSilentPeerTimesOut(t *testing.T) {
	l := listen(t, Config{Timeout: 300 * time.Millisecond})
	c := dial(t, l, testToken(t, token.DevKey, time.Minute))
	s := accept(t, l)
	// Silence the client: end it without telling the server.
	c.shut(&transport.CloseError{Code: 0, Reason: "vanished"}, false)
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("silent client never timed out")
	}
	ce, _ := transport.AsCloseError(s.err())
	require.Contains(t, ce.Reason, "silent")
}

// An idle client answers the server's keepalives (8.6) instead of keeping
// its own, longer schedule: with the server's every 200 ms, the client
// sends one whenever it has been silent for half its own period, not only
// every 1.5 s.
func TestClientAnswersKeepAlives(t *testing.T) {
	l := listen(t, Config{KeepAlive: 200 * time.Millisecond})
	c := dial(t, l, testToken(t, token.DevKey, time.Minute))
	s := accept(t, l)
	time.Sleep(200 * time.Millisecond) // the handshake's packets are done
	sent0, recv0 := c.Stats().PacketsSent, s.Stats().PacketsReceived
	time.Sleep(3 * time.Second)
	sent := c.Stats().PacketsSent - sent0
	require.GreaterOrEqual(t, sent, uint64(4), "the client answered the server's keepalives (its own would be 2 in 3 s)")
	require.GreaterOrEqual(t, s.Stats().PacketsReceived-recv0, uint64(4), "and the server received them")
}

// An idle pair hears each other by keep-alives alone (transport.KeptAlive):
// both sides' Heard grows, and the listener's session times its
// keep-alives' answers, which RTT reports when lower than KCP's estimate.
func TestKeepAlivesAreHeardAndTimed(t *testing.T) {
	keep := 200 * time.Millisecond
	l := listen(t, Config{KeepAlive: keep})
	c := dial(t, l, testToken(t, token.DevKey, time.Minute))
	s := accept(t, l)
	time.Sleep(keep)
	ch, sh := c.Heard(), s.Heard()
	time.Sleep(10 * keep) // a keep-alive every keep plus a timer tick (100 ms), answered while the client sent nothing for 0.5 s
	require.GreaterOrEqual(t, c.Heard()-ch, uint64(5), "the client heard the server's keep-alives")
	require.GreaterOrEqual(t, s.Heard()-sh, uint64(2), "the server heard their answers")
	require.Equal(t, keep, s.KeepAlive())
	require.NotZero(t, s.kaAt.Load(), "an answer was timed")
	ka := time.Duration(s.kaRTT.Load())
	require.Greater(t, ka, time.Duration(0))
	require.Less(t, ka, keep)
	require.Zero(t, c.kaAt.Load(), "the dialling side answers, it does not time")

	// With a KCP estimate from data sent before, RTT is the lower of the two.
	_, err := c.Write([]byte("hello"))
	require.NoError(t, err)
	buf := make([]byte, 16)
	_, err = s.Read(buf)
	require.NoError(t, err)
	s.mu.Lock()
	srtt := time.Duration(kcpSRTT(s.kcp)) * time.Millisecond
	s.mu.Unlock()
	rtt := s.RTT()
	require.LessOrEqual(t, rtt, srtt)
	require.Less(t, rtt, keep, "a keep-alive's round trip at most, which is under keep")
}
