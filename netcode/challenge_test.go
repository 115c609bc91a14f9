package netcode_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/mem"
	"github.com/roomwire/roomwire/reliable"
)

// challenged is an in-memory session on a transport without TLS keying
// material, as WebSocket and WebTransport are to a browser.
type challenged struct{ transport.Session }

func (challenged) Challenged() {}

type challengedListener struct{ *mem.Listener }

func (l challengedListener) Accept(ctx context.Context) (transport.Session, error) {
	s, err := l.Listener.Accept(ctx)
	if err != nil {
		return nil, err
	}
	return challenged{s}, nil
}

// On a challenged transport the server opens with a CHALLENGE and the
// client binds its token proof to it: a token admits its holder, a HELLO
// replayed on another connection (another challenge) admits no one, and no
// token admits no one.
func TestTokenBoundToChallenge(t *testing.T) {
	ln := mem.NewListener("challenged")
	srv, err := netcode.NewServer(netcode.Config{
		Listeners: []transport.Listener{challengedListener{ln}},
		Tokens:    &netcode.Tokens{Key: token.DevKey, ProtocolID: nt.ProtocolID},
	})
	require.NoError(t, err)
	srv.Handle("echo", func(_ *netcode.Conn, p []byte) ([]byte, error) { return p, nil })
	go func() { _ = srv.Serve(context.Background()) }()
	defer func() { _ = srv.Close() }()
	dial := func(ctx context.Context, _ string) (transport.Session, error) {
		s, err := ln.Dial(ctx)
		if err != nil {
			return nil, err
		}
		return challenged{s}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cl, err := netcode.Dial(ctx, "mem://challenged", netcode.ClientConfig{Token: nt.Token(), Dial: dial})
	require.NoError(t, err)
	rep, err := cl.Request(ctx, "echo", []byte("in"))
	require.NoError(t, err)
	require.Equal(t, "in", string(rep))
	require.NoError(t, cl.Close())

	_, err = netcode.Dial(ctx, "mem://challenged", netcode.ClientConfig{Dial: dial})
	var ce *netcode.CloseError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, netcode.CloseRefused, ce.Code, "no token")

	// A HELLO whose proof answers another connection's challenge.
	first, err := dial(ctx, "")
	require.NoError(t, err)
	defer first.Close(0, "")
	f, err := reliable.NewReader(first, 0).Next()
	require.NoError(t, err)
	require.Equal(t, reliable.FrameChallenge, f.Type)
	other, err := dial(ctx, "")
	require.NoError(t, err)
	defer other.Close(0, "")
	g, err := reliable.NewReader(other, 0).Next()
	require.NoError(t, err)
	require.Equal(t, reliable.FrameChallenge, g.Type)
	require.NotEqual(t, f.Payload, g.Payload, "every connection its own challenge")
	tok := nt.Token()
	proof := token.Proof(tok.ClientToServer, f.Payload)
	auth := append(tok.AppendWire(nil), proof[:]...)
	hello, err := reliable.AppendHello(nil, reliable.Version, auth)
	require.NoError(t, err)
	_, err = other.Write(hello)
	require.NoError(t, err)
	code, reason := closeOf(t, other)
	require.Equal(t, reliable.CloseRefused, code)
	require.Equal(t, "connect token refused", reason)
}
