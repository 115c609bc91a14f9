package netcode_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/reliable"
	"github.com/roomwire/roomwire/unreliable"
)

func helloRaw(t *testing.T, s transport.Session) {
	t.Helper()
	b, err := reliable.AppendHello(nil, reliable.Version, nil)
	require.NoError(t, err)
	_, err = s.Write(b)
	require.NoError(t, err)
}

// readWelcome reads the server's WELCOME, after the CHALLENGE that comes
// first on a challenged transport (WebSocket).
func readWelcome(t *testing.T, s transport.Session) netcode.ID {
	t.Helper()
	r := reliable.NewReader(s, 0)
	f, err := r.Next()
	require.NoError(t, err)
	require.Equal(t, reliable.FrameWelcome, f.Type)
	return netcode.ID(f.ConnID)
}

// closeOf reads until the server ends the session and returns the close code
// and reason it gave, from the CLOSE frame or from the transport.
func closeOf(t *testing.T, s transport.Session) (reliable.CloseCode, string) {
	t.Helper()
	type res struct {
		code   reliable.CloseCode
		reason string
		err    error
	}
	done := make(chan res, 1)
	go func() {
		r := reliable.NewReader(s, 0)
		for {
			f, err := r.Next()
			if err != nil {
				if ce, ok := transport.AsCloseError(err); ok {
					done <- res{code: reliable.CloseCode(ce.Code), reason: ce.Reason}
				} else {
					done <- res{err: err}
				}
				return
			}
			if f.Type == reliable.FrameClose {
				done <- res{code: f.Code, reason: string(f.Payload)}
				return
			}
		}
	}()
	r := nt.Recv(t, done, "the server closing the session")
	require.NoError(t, r.err)
	return r.code, r.reason
}

func rawFrame(typ byte, body []byte) []byte {
	n := len(body)
	return append([]byte{typ, byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

func TestBadInputClosesOnlyTheOffender(t *testing.T) {
	hello, _ := reliable.AppendHello(nil, reliable.Version, nil)
	cases := []struct {
		name   string
		send   []byte
		hello  bool // send a valid HELLO first
		code   reliable.CloseCode
		reason string
	}{
		{"frame over the limit", []byte{byte(reliable.FrameEvent), 0x10, 0, 0}, true, reliable.CloseFrameTooLarge, "frame too large"},
		{"unknown frame type", rawFrame(0x7f, []byte("??")), true, reliable.CloseProtocolError, "unknown frame type"},
		{"event name longer than its frame", rawFrame(byte(reliable.FrameEvent), []byte{200, 'a'}), true, reliable.CloseProtocolError, "truncated"},
		{"empty event name", rawFrame(byte(reliable.FrameEvent), []byte{0}), true, reliable.CloseProtocolError, "bad event name"},
		{"short ping", rawFrame(byte(reliable.FramePing), []byte{1, 2}), true, reliable.CloseProtocolError, "malformed"},
		{"second HELLO", hello, true, reliable.CloseProtocolError, "unexpected HELLO"},
		{"first frame not HELLO", rawFrame(byte(reliable.FramePing), make([]byte, 8)), false, reliable.CloseProtocolError, "want HELLO"},
		{"wrong version", rawFrame(byte(reliable.FrameHello), []byte{0, 99}), false, reliable.CloseVersionMismatch, "protocol version 99 not supported"},
		{"oversized HELLO", []byte{byte(reliable.FrameHello), 0xff, 0xff, 0xff}, false, reliable.CloseFrameTooLarge, "frame too large"},
	}
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		srv := nt.Server(t, tr, nil, echo)
		bystander := nt.Client(t, tr, srv, nil)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				raw, err := tr.Raw(context.Background(), srv)
				require.NoError(t, err)
				defer raw.Close(0, "")
				if tc.hello {
					helloRaw(t, raw)
					readWelcome(t, raw)
				}
				_, err = raw.Write(tc.send)
				require.NoError(t, err)
				code, reason := closeOf(t, raw)
				require.Equal(t, tc.code, code, "reason: %s", reason)
				require.Contains(t, reason, tc.reason)

				rep, err := bystander.Request(context.Background(), "echo", []byte("ok"))
				require.NoError(t, err, "other connections are untouched")
				require.Equal(t, "ok", string(rep))
			})
		}
		nt.Eventually(t, func() bool {
			m := srv.Metrics()
			return m.ProtocolErrors == 6 && m.HandshakesFailed == 3
		}, "each bad connection counted: %+v", srv.Metrics())
	})
}

func TestHandshakeTimeout(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		srv := nt.Server(t, tr, &netcode.Config{HandshakeTimeout: 200 * time.Millisecond}, nil)
		raw, err := tr.Raw(context.Background(), srv)
		require.NoError(t, err)
		defer raw.Close(0, "")
		start := time.Now()
		code, reason := closeOf(t, raw)
		require.Equal(t, reliable.CloseHandshakeTimeout, code)
		require.Contains(t, reason, "no HELLO accepted within")
		require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
		nt.Eventually(t, func() bool { return srv.Metrics().HandshakesFailed == 1 }, "failed handshake counted")
	})
}

func TestBadDatagramsAreDroppedNotFatal(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		got := make(chan string, 10)
		srv := nt.Server(t, tr, nil, func(s *netcode.Server) {
			echo(s)
			s.OnInput(func(_ *netcode.Conn, d []byte) { got <- string(d) })
		})
		raw, err := tr.Raw(context.Background(), srv)
		require.NoError(t, err)
		defer raw.Close(0, "")
		helloRaw(t, raw)
		id := readWelcome(t, raw)

		hdr := func(kind unreliable.Kind, seq uint16) []byte {
			return unreliable.AppendHeader(nil, unreliable.Header{Kind: kind, Seq: seq})
		}
		inputs := func(seq uint16, in ...unreliable.Input) []byte {
			d, err := unreliable.AppendInputs(hdr(unreliable.KindInput, seq), unreliable.SnapshotAck{}, in)
			require.NoError(t, err)
			return d
		}
		bad := [][]byte{
			{},                                 // empty
			{byte(unreliable.KindInput), 0, 1}, // short header
			append(hdr(0x7e, 1), 'x'),          // unknown kind
			append(hdr(unreliable.KindSnapshot, 2), 0, 0, 0, 1, 0, 1),  // a snapshot from a client
			append(hdr(unreliable.KindInput, 3), 1, 2, 3),              // an input body cut short
			inputs(0, unreliable.Input{Seq: 1, Data: []byte("x")}),     // sequence number 0 is never sent
			append(hdr(unreliable.KindEvent, 4), 0, 0, 0, 0),           // an EVENT whose name length is 0
			append(hdr(unreliable.KindEvent, 5), 0, 0, 0, 9, 'a', 'b'), // an EVENT whose name runs past the end
			append(hdr(unreliable.KindReliable, 6), 0, 0, 0, 1, 0),     // RELIABLE copies: a count of 0
		}
		for _, d := range bad {
			require.NoError(t, raw.SendDatagram(d))
		}
		require.NoError(t, raw.SendDatagram(inputs(10, unreliable.Input{Seq: 1, Data: []byte("fire")})))
		require.Equal(t, "fire", nt.Recv(t, got, "valid input after bad ones"))
		nt.Eventually(t, func() bool { return srv.Metrics().DatagramsBad == uint64(len(bad)) }, "bad datagrams counted")

		// The next datagram repeats input 1 with input 2: only 2 is new.
		require.NoError(t, raw.SendDatagram(inputs(11, unreliable.Input{Seq: 1, Data: []byte("fire")}, unreliable.Input{Seq: 2, Data: []byte("jump")})))
		require.Equal(t, "jump", nt.Recv(t, got, "the new input"))
		nt.Never(t, got, 50*time.Millisecond, "an input handed over twice")
		require.EqualValues(t, 1, srv.Conn(id).Stats().InputsRedundant)

		// The connection is still open: a request on the raw stream works.
		req, err := reliable.AppendRequest(nil, 7, "echo", []byte("alive"))
		require.NoError(t, err)
		_, err = raw.Write(req)
		require.NoError(t, err)
		f, err := reliable.NewReader(raw, 0).Next()
		require.NoError(t, err)
		require.Equal(t, reliable.FrameReply, f.Type)
		require.Equal(t, "alive", string(f.Payload))
	})
}

func TestDialErrors(t *testing.T) {
	_, err := netcode.Dial(context.Background(), "tcp://127.0.0.1:1", netcode.ClientConfig{})
	require.ErrorContains(t, err, "unsupported transport")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = netcode.Dial(ctx, "quic://127.0.0.1:1", netcode.ClientConfig{InsecureSkipVerify: true})
	require.Error(t, err)
	require.True(t, errors.Is(err, context.DeadlineExceeded) || err != nil)
}
