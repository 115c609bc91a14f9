package token

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const pid = 0xabc

func TestIssueOpenRoundTrip(t *testing.T) {
	now := time.Now()
	key := NewKey()
	tok, err := Issue(key, Params{ProtocolID: pid, ClientID: 42, UserData: []byte("gold"), Servers: []string{"kcp://127.0.0.1:7778", "quic://127.0.0.1:7777"}, TTL: time.Minute, Timeout: 7 * time.Second}, now)
	require.NoError(t, err)
	cl, err := NewOpener(key, pid).Open(tok.Wire(), now)
	require.NoError(t, err)
	require.Equal(t, uint64(42), cl.ClientID)
	require.Equal(t, "gold", string(cl.UserData))
	require.Equal(t, tok.Servers, cl.Servers)
	require.Equal(t, tok.ClientToServer, cl.ClientToServer)
	require.Equal(t, tok.ServerToClient, cl.ServerToClient)
	require.Equal(t, 7*time.Second, cl.Timeout)
	require.Equal(t, tok.Expires.Unix(), cl.Expires.Unix())
	require.NotEqual(t, tok.ClientToServer, tok.ServerToClient)
}

func TestOpenRefuses(t *testing.T) {
	now := time.Now()
	key := NewKey()
	tok, err := Issue(key, Params{ProtocolID: pid, TTL: time.Minute}, now)
	require.NoError(t, err)
	wire := tok.Wire()
	o := NewOpener(key, pid)

	_, err = o.Open(wire, now.Add(2*time.Minute))
	require.ErrorIs(t, err, ErrExpired)
	_, err = NewOpener(key, pid+1).Open(wire, now)
	require.ErrorIs(t, err, ErrProtocol)
	_, err = NewOpener(NewKey(), pid).Open(wire, now)
	require.ErrorIs(t, err, ErrForged)
	_, err = o.Open(wire[:len(wire)-1], now)
	require.ErrorIs(t, err, ErrMalformed)

	bad := append([]byte(nil), wire...)
	bad[0] = 9
	_, err = o.Open(bad, now)
	require.ErrorIs(t, err, ErrVersion)

	// The expiry is bound to the sealed part: pushing it later breaks it.
	later := append([]byte(nil), wire...)
	later[17]++
	_, err = o.Open(later, now)
	require.ErrorIs(t, err, ErrForged)

	for i := 18; i < len(wire); i += 97 {
		flipped := append([]byte(nil), wire...)
		flipped[i] ^= 1
		_, err = o.Open(flipped, now)
		require.ErrorIs(t, err, ErrForged, "byte %d", i)
	}
}

func TestIssueLimits(t *testing.T) {
	_, err := Issue(DevKey, Params{UserData: make([]byte, MaxUserData+1)}, time.Now())
	require.ErrorIs(t, err, ErrUserDataLarge)
	_, err = Issue(DevKey, Params{Servers: make([]string, MaxServers+1)}, time.Now())
	require.Error(t, err)
	_, err = Issue(DevKey, Params{Servers: []string{string(make([]byte, MaxServerAddr+1))}}, time.Now())
	require.Error(t, err)
	full := make([]string, MaxServers)
	for i := range full {
		full[i] = string(make([]byte, MaxServerAddr))
	}
	tok, err := Issue(DevKey, Params{UserData: make([]byte, MaxUserData), Servers: full}, time.Now())
	require.NoError(t, err, "the largest token fits its fixed private part")
	_, err = NewOpener(DevKey, 0).Open(tok.Wire(), time.Now())
	require.NoError(t, err)
}

func TestMarshalRoundTrip(t *testing.T) {
	tok, err := Issue(DevKey, Params{ProtocolID: pid, ClientID: 1, Servers: []string{"kcp://h:1"}}, time.Now())
	require.NoError(t, err)
	b, err := tok.MarshalBinary()
	require.NoError(t, err)
	var got ConnectToken
	require.NoError(t, got.UnmarshalBinary(b))
	require.Equal(t, tok.Wire(), got.Wire())
	require.Equal(t, tok.Servers, got.Servers)
	require.Equal(t, tok.ClientToServer, got.ClientToServer)
	require.Equal(t, tok.Timeout, got.Timeout)
	require.Error(t, got.UnmarshalBinary(b[:len(b)-1]))
	require.Error(t, got.UnmarshalBinary(append(b, 0)))
}

func TestKeys(t *testing.T) {
	k := NewKey()
	p, err := ParseKey(k.String() + "\n")
	require.NoError(t, err)
	require.Equal(t, k, p)
	_, err = ParseKey("abc")
	require.Error(t, err)
	_, err = ParseKey(string(make([]byte, 64)))
	require.Error(t, err)
}

func FuzzToken(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	tok, _ := Issue(DevKey, Params{ProtocolID: pid, ClientID: 5, UserData: []byte("x"), Servers: []string{"kcp://a:1"}}, now)
	full, _ := tok.MarshalBinary()
	f.Add(tok.Wire())
	f.Add(full)
	f.Add([]byte{0, 1})
	o := NewOpener(DevKey, pid)
	f.Fuzz(func(t *testing.T, b []byte) {
		if cl, err := o.Open(b, now); err == nil && len(cl.UserData) > MaxUserData {
			t.Fatalf("opened user data of %d bytes", len(cl.UserData))
		}
		var ct ConnectToken
		if ct.UnmarshalBinary(b) == nil {
			again, err := ct.MarshalBinary()
			if err != nil || string(again) != string(b) {
				t.Fatalf("token does not re-encode to its bytes")
			}
		}
	})
}

// A ticket key is the token key's, derived: the same for the same key,
// another for another, never the key itself; what one seals the other does
// not open.
func TestTicketKey(t *testing.T) {
	k := TicketKey(DevKey)
	require.Equal(t, k, TicketKey(DevKey))
	require.NotEqual(t, DevKey, k)
	require.NotEqual(t, k, TicketKey(NewKey()))
	tok, err := Issue(k, Params{ProtocolID: DefaultProtocolID}, time.Now())
	require.NoError(t, err)
	_, err = NewOpener(DevKey, DefaultProtocolID).Open(tok.Wire(), time.Now())
	require.ErrorIs(t, err, ErrForged)
	_, err = NewOpener(k, DefaultProtocolID).Open(tok.Wire(), time.Now())
	require.NoError(t, err)
}
