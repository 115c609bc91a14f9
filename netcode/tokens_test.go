package netcode_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/token"
)

// A server that requires tokens checks them on QUIC in the HELLO, and the
// auth hook sees the same claims on QUIC as on KCP.
func TestConnectTokensOnQUIC(t *testing.T) {
	tc, err := netcode.DevTLSConfig()
	require.NoError(t, err)
	seen := make(chan uint64, 4)
	srv, err := netcode.NewServer(netcode.Config{
		QUICAddr: "[::]:0", // both 127.0.0.1 and ::1 reach it
		KCPAddr:  "127.0.0.1:0",
		TLS:      tc,
		Tokens:   &netcode.Tokens{Key: token.DevKey, ProtocolID: nt.ProtocolID},
		Authenticate: func(_ context.Context, h netcode.Hello) (netcode.Identity, error) {
			seen <- h.Token.ClientID
			return netcode.Identity{User: string(h.Token.UserData)}, nil
		},
	})
	require.NoError(t, err)
	srv.Handle("whoami", func(c *netcode.Conn, _ []byte) ([]byte, error) { return []byte(c.Identity().User), nil })
	go srv.Serve(context.Background())
	defer srv.Close()
	port := strconv.Itoa(srv.Addrs()[0].(*net.UDPAddr).Port)

	issue := func(id uint64, ttl time.Duration, at time.Time) *token.ConnectToken {
		tok, err := token.Issue(token.DevKey, token.Params{ProtocolID: nt.ProtocolID, ClientID: id, UserData: []byte("player"), TTL: ttl}, at)
		require.NoError(t, err)
		return tok
	}
	dial := func(url string, tok *token.ConnectToken) (*netcode.Client, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return netcode.Dial(ctx, url, netcode.ClientConfig{InsecureSkipVerify: true, Token: tok})
	}
	refusal := func(err error) string {
		var ce *netcode.CloseError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, netcode.CloseRefused, ce.Code)
		return ce.Reason
	}

	tok := issue(7, time.Minute, time.Now())
	a, err := dial("quic://127.0.0.1:"+port, tok)
	require.NoError(t, err)
	defer a.Close()
	require.Equal(t, uint64(7), nt.Recv(t, seen, "auth hook"))
	who, err := a.Request(context.Background(), "whoami", nil)
	require.NoError(t, err)
	require.Equal(t, "player", string(who))

	_, err = dial("quic://[::1]:"+port, tok)
	require.Contains(t, refusal(err), "already used from another address")

	_, err = dial("quic://127.0.0.1:"+port, nil)
	require.Equal(t, "connect token refused", refusal(err))

	_, err = dial("quic://127.0.0.1:"+port, issue(8, time.Second, time.Now().Add(-time.Hour)))
	require.Equal(t, "connect token refused", refusal(err), "details stay in the server log")

	// A token copied off the wire, without its key, admits no one: the
	// HELLO must prove the key, bound to this very TLS connection.
	stolen := issue(10, time.Minute, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = netcode.Dial(ctx, "quic://[::1]:"+port, netcode.ClientConfig{InsecureSkipVerify: true,
		Auth: append(stolen.Wire(), make([]byte, token.ProofSize)...)})
	require.Equal(t, "connect token refused", refusal(err))

	// The same kind of token admits a player on KCP, through the same hook.
	k, err := dial("kcp://"+srv.Addrs()[1].String(), issue(9, time.Minute, time.Now()))
	require.NoError(t, err)
	defer k.Close()
	require.Equal(t, uint64(9), nt.Recv(t, seen, "auth hook on KCP"))
}
