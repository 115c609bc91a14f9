package secure

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode/token"
)

const pid = 42

func pair() (*Sealer, *Opener) {
	k := token.NewKey()
	return NewSealer(k, pid), NewOpener(k, pid)
}

func TestSealOpenRoundTrip(t *testing.T) {
	s, o := pair()
	for _, typ := range []PacketType{PacketKeepAlive, PacketKCP, PacketDatagram, PacketDisconnect} {
		msg := bytes.Repeat([]byte{byte(typ)}, int(typ)*100)
		p := s.Seal(nil, typ, msg)
		require.Len(t, p, len(msg)+Overhead)
		got, payload, err := o.Open(nil, p)
		require.NoError(t, err)
		require.Equal(t, typ, got)
		require.Equal(t, msg, payload)
	}
}

func TestTamperedPacketsDoNotOpen(t *testing.T) {
	s, o := pair()
	p := s.Seal(nil, PacketDatagram, []byte("move left"))
	for i := range p {
		q := bytes.Clone(p)
		q[i] ^= 0x40
		_, _, err := o.Open(nil, q)
		require.Error(t, err, "flipping byte %d must be caught", i)
	}
	// The untouched packet still opens: failures did not move the window.
	_, payload, err := o.Open(nil, p)
	require.NoError(t, err)
	require.Equal(t, "move left", string(payload))
}

func TestWrongKeyOrProtocolDoesNotOpen(t *testing.T) {
	s, _ := pair()
	p := s.Seal(nil, PacketKCP, []byte("x"))
	_, _, err := NewOpener(token.NewKey(), pid).Open(nil, p)
	require.ErrorIs(t, err, ErrOpen)
	k := token.NewKey()
	p = NewSealer(k, pid).Seal(nil, PacketKCP, []byte("x"))
	_, _, err = NewOpener(k, pid+1).Open(nil, p)
	require.ErrorIs(t, err, ErrOpen)
}

// Sealers and Openers of one protocol id share their additional-data
// table: a session's keys cost no 5 KB tables of their own.
func TestAdditionalDataShared(t *testing.T) {
	s, o := pair()
	s2, o2 := pair()
	require.Same(t, s.ad, o.ad)
	require.Same(t, s.ad, s2.ad)
	require.Same(t, o.ad, o2.ad)
	other := NewSealer(token.NewKey(), pid+1)
	require.NotSame(t, s.ad, other.ad)
	require.Equal(t, byte(PacketKCP), other.ad[PacketKCP][20])
}

func TestReplaysAreDropped(t *testing.T) {
	s, o := pair()
	var packets [][]byte
	for i := 0; i < 300; i++ {
		packets = append(packets, s.Seal(nil, PacketDatagram, []byte{byte(i)}))
	}
	// Out of order within the window: all open once.
	for _, i := range []int{5, 3, 4, 0, 1, 2} {
		_, _, err := o.Open(nil, packets[i])
		require.NoError(t, err)
	}
	for _, i := range []int{5, 0} {
		_, _, err := o.Open(nil, packets[i])
		require.ErrorIs(t, err, ErrReplayed)
	}
	_, _, err := o.Open(nil, packets[299])
	require.NoError(t, err)
	// Now 6..42 are more than 256 behind 299: too old, even never seen.
	_, _, err = o.Open(nil, packets[10])
	require.ErrorIs(t, err, ErrReplayed)
	_, _, err = o.Open(nil, packets[100])
	require.NoError(t, err, "within the window and never seen")
}

func TestMalformedPackets(t *testing.T) {
	_, o := pair()
	_, _, err := o.Open(nil, []byte{byte(PacketKCP), 1, 2})
	require.ErrorIs(t, err, ErrShort)
	_, _, err = o.Open(nil, make([]byte, MaxPacket+1))
	require.ErrorIs(t, err, ErrLarge)
	bad := make([]byte, 40)
	bad[0] = byte(PacketRequest)
	_, _, err = o.Open(nil, bad)
	require.ErrorIs(t, err, ErrType)
}

func TestHandshakeSequencesNeverMeetSessionOnes(t *testing.T) {
	for i := 0; i < 100; i++ {
		require.True(t, IsHandshakeSeq(HandshakeSeq()))
	}
	s, _ := pair()
	p := s.Seal(nil, PacketKeepAlive, nil)
	seq, ok := SeqOf(p)
	require.True(t, ok)
	require.False(t, IsHandshakeSeq(seq))
}

func claims(t *testing.T) *token.Claims {
	tok, err := token.Issue(token.DevKey, token.Params{ProtocolID: pid, ClientID: 99, UserData: []byte("u")}, time.Now())
	require.NoError(t, err)
	cl, err := token.NewOpener(token.DevKey, pid).Open(tok.Wire(), time.Now())
	require.NoError(t, err)
	return cl
}

func TestChallengeBindsTheAddress(t *testing.T) {
	c := NewChallenger()
	cl := claims(t)
	addr := netip.MustParseAddrPort("127.0.0.1:5000")
	ch := c.AppendChallenge(nil, cl, addr)
	require.Len(t, ch, ChallengeSize)
	adm, err := c.Verify(ch, addr, time.Now())
	require.NoError(t, err)
	require.Equal(t, uint64(99), adm.Claims.ClientID)
	require.Equal(t, cl.ClientToServer, adm.Claims.ClientToServer)
	require.Equal(t, cl.Tag, adm.Claims.Tag)
	require.Equal(t, "u", string(adm.Claims.UserData))
	require.False(t, adm.Claims.Ticket)
	require.Equal(t, cl.Expires.Unix(), adm.Claims.Expires.Unix())

	cl.Ticket = true // a resume ticket's handshake stays one through the challenge
	adm, err = c.Verify(c.AppendChallenge(nil, cl, addr), addr, time.Now())
	require.NoError(t, err)
	require.True(t, adm.Claims.Ticket)
	require.Equal(t, cl.Expires.Unix(), adm.Claims.Expires.Unix())
	cl.Ticket = false

	_, err = c.Verify(ch, netip.MustParseAddrPort("127.0.0.1:5001"), time.Now())
	require.Error(t, err, "a challenge echoed from another address")
	_, err = NewChallenger().Verify(ch, addr, time.Now())
	require.Error(t, err, "another server process's challenge")
	_, err = c.Verify(ch, addr, cl.Expires.Add(time.Second))
	require.Error(t, err, "the token expired meanwhile")
	ch[20] ^= 1
	_, err = c.Verify(ch, addr, time.Now())
	require.Error(t, err, "a tampered challenge")
}

func TestNoAmplification(t *testing.T) {
	// The server answers only REQUESTs, with one CHALLENGE or DENIED.
	challenge := Overhead + ChallengeSize
	require.Less(t, challenge, RequestSize)
	require.Less(t, Overhead, RequestSize)
	require.LessOrEqual(t, RequestSize, MaxPacket)
	require.LessOrEqual(t, ResponseSize, MaxPacket)
}

func TestDisconnectPayload(t *testing.T) {
	p := AppendDisconnect(nil, 9, "bye")
	code, reason, err := ParseDisconnect(p)
	require.NoError(t, err)
	require.Equal(t, uint16(9), code)
	require.Equal(t, "bye", reason)
	_, _, err = ParseDisconnect([]byte{1})
	require.Error(t, err)
}

func BenchmarkSealOpen1200(b *testing.B) {
	s, o := pair()
	payload := make([]byte, MaxPayload)
	sealed := make([]byte, 0, MaxPacket)
	opened := make([]byte, 0, MaxPacket)
	b.ReportAllocs()
	b.SetBytes(MaxPacket)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sealed = s.Seal(sealed[:0], PacketDatagram, payload)
		if _, _, err := o.Open(opened[:0], sealed); err != nil {
			b.Fatal(err)
		}
	}
}
