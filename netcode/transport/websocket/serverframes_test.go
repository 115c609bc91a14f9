package websocket

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/reliable"
)

// bothReaders runs test with a server's sessions read by the listener's
// poller (on Linux; elsewhere by Read as well) and by their Read.
func bothReaders(t *testing.T, test func(*testing.T, Config)) {
	t.Run("poller", func(t *testing.T) { test(t, Config{}) })
	t.Run("reader per session", func(t *testing.T) { test(t, Config{ReaderPerSession: true}) })
}

// clientFrame is a client's frame (RFC 6455 5.2): masked with key, final
// when fin.
func clientFrame(fin bool, op byte, key [4]byte, p []byte) []byte {
	b0 := op
	if fin {
		b0 |= finBit
	}
	b := []byte{b0}
	if len(p) <= 125 {
		b = append(b, 0x80|byte(len(p)))
	} else {
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(len(p)))
	}
	b = append(b, key[:]...)
	for i, c := range p {
		b = append(b, c^key[i&3])
	}
	return b
}

// upgradeRequest is a WebSocket opening handshake for url's path.
func upgradeRequest(url string) []byte {
	host := strings.TrimPrefix(url, "ws://")
	host, path, _ := strings.Cut(host, "/")
	return []byte("GET /" + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " + Subprotocol + "\r\n\r\n")
}

// rawClient opens a TCP connection to url's listener and writes the
// opening handshake with first behind it, in one write; it returns the
// connection and a reader past the server's 101 response.
func rawClient(t *testing.T, url string, first []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	host, _, _ := strings.Cut(strings.TrimPrefix(url, "ws://"), "/")
	c, err := net.Dial("tcp", host)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Write(append(upgradeRequest(url), first...))
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	return c, br
}

// rawSession opens a raw client to l at url, first behind its handshake
// (rawClient), and returns it, its reader and the server's session.
func rawSession(t *testing.T, l *Listener, url string, first []byte) (net.Conn, *bufio.Reader, *Session) {
	t.Helper()
	c, br := rawClient(t, url, first)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := l.Accept(ctx)
	require.NoError(t, err)
	return c, br, s.(*Session)
}

// serverFrame reads one frame the server wrote, which is never masked.
func serverFrame(t *testing.T, br *bufio.Reader) (op byte, p []byte) {
	t.Helper()
	var h [2]byte
	_, err := io.ReadFull(br, h[:])
	require.NoError(t, err)
	require.Zero(t, h[1]&0x80, "a server's frame is not masked")
	n := int(h[1] & 0x7F)
	if n == 126 {
		var e [2]byte
		_, err = io.ReadFull(br, e[:])
		require.NoError(t, err)
		n = int(binary.BigEndian.Uint16(e[:]))
	}
	p = make([]byte, n)
	_, err = io.ReadFull(br, p)
	require.NoError(t, err)
	return h[0] & 0x0F, p
}

// A server's session reads the frames a client may send: bytes sent behind
// the handshake before the server answered it, a message in fragments with
// a ping between them (answered with its pong), a datagram, and the
// client's close with its status and reason, which it echoes.
func TestServerReadsClientFrames(t *testing.T) { bothReaders(t, testServerReadsClientFrames) }

func testServerReadsClientFrames(t *testing.T, cfg Config) {
	l, url := serve(t, cfg, false)
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	reliableBytes := []byte("\x00first half, second half")
	first := clientFrame(false, opBinary, key, reliableBytes[:12])
	first = append(first, clientFrame(true, opPing, key, []byte("are you there"))...)
	first = append(first, clientFrame(false, opContinuation, key, reliableBytes[12:15])...)
	first = append(first, clientFrame(true, opContinuation, key, reliableBytes[15:])...)
	dgram := append([]byte{channelDatagram}, make([]byte, 300)...)
	for i := range dgram[1:] {
		dgram[1+i] = byte(i)
	}
	first = append(first, clientFrame(true, opBinary, key, dgram)...)
	c, br, s := rawSession(t, l, url, first)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.Equal(t, runtime.GOOS == "linux" && !cfg.ReaderPerSession, s.poll != nil, "who reads the socket")
	got := make([]byte, len(reliableBytes)-1)
	_, err := io.ReadFull(s, got)
	require.NoError(t, err)
	require.Equal(t, string(reliableBytes[1:]), string(got))
	// The rest is read by the next Read, as netcode's read loop reads on.
	readErr := make(chan error, 1)
	go func() {
		_, err := s.Read(got)
		readErr <- err
	}()
	d, err := s.ReceiveDatagram(ctx)
	require.NoError(t, err)
	require.Equal(t, dgram[1:], d)
	op, p := serverFrame(t, br)
	require.Equal(t, byte(opPong), op)
	require.Equal(t, "are you there", string(p))

	closing := binary.BigEndian.AppendUint16(nil, 4000+uint16(reliable.CloseKicked))
	_, err = c.Write(clientFrame(true, opClose, key, append(closing, "bye"...)))
	require.NoError(t, err)
	<-s.Done()
	err = <-readErr
	ce, ok := transport.AsCloseError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, transport.CloseError{Code: uint16(reliable.CloseKicked), Reason: "bye", Remote: true}, *ce)
	op, p = serverFrame(t, br)
	require.Equal(t, byte(opClose), op)
	require.Equal(t, closing, p, "the close echoes the status")
	s.Wait()
}

// Frames that break RFC 6455 end reading with a protocol error; the
// server's close still reaches the peer, which then closes.
func TestServerRefusesBadFrames(t *testing.T) { bothReaders(t, testServerRefusesBadFrames) }

func testServerRefusesBadFrames(t *testing.T, cfg Config) {
	cfg.MaxFrame = 1024
	key := [4]byte{1, 2, 3, 4}
	unmasked := []byte{finBit | opBinary, 3, channelReliable, 'h', 'i'}
	cases := map[string][]byte{
		"an unmasked frame":         unmasked,
		"reserved bits":             func() []byte { b := clientFrame(true, opBinary, key, []byte{0, 1}); b[0] |= 0x40; return b }(),
		"a reserved opcode":         clientFrame(true, 0x3, key, []byte{0, 1}),
		"a fragmented control":      clientFrame(false, opPing, key, nil),
		"a lone continuation":       clientFrame(true, opContinuation, key, []byte{0, 1}),
		"a one-byte close":          clientFrame(true, opClose, key, []byte{3}),
		"a message over the limits": clientFrame(true, opBinary, key, append([]byte{channelReliable}, make([]byte, 2000)...)),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			l, url := serve(t, cfg, false)
			c, br, s := rawSession(t, l, url, bad)
			_, err := s.Read(make([]byte, 16))
			if name == "a message over the limits" {
				require.ErrorIs(t, err, reliable.ErrFrameTooLarge)
			} else {
				require.ErrorIs(t, err, reliable.ErrBadFrame)
			}
			require.NoError(t, s.Close(uint16(reliable.CloseProtocolError), "bad frame"))
			op, p := serverFrame(t, br)
			require.Equal(t, byte(opClose), op)
			require.Equal(t, uint16(4000+reliable.CloseProtocolError), binary.BigEndian.Uint16(p))
			require.Equal(t, "bad frame", string(p[2:]))
			_, err = c.Write(clientFrame(true, opClose, key, p[:2]))
			require.NoError(t, err)
			s.Wait()
		})
	}
}

// A server that closes reads on to the peer's close frame, passing over
// data sent meanwhile (a datagram in several fragments among them), and
// then closes the TCP connection at once, as RFC 6455 7.1.1 has the server
// do: a browser answers the close frame and waits for the server's TCP
// close, which must not wait out the closing handshake's second.
func TestServerClosesTCPOnThePeersClose(t *testing.T) {
	bothReaders(t, testServerClosesTCPOnThePeersClose)
}

func testServerClosesTCPOnThePeersClose(t *testing.T, cfg Config) {
	l, url := serve(t, cfg, false)
	key := [4]byte{5, 6, 7, 8}
	c, br, s := rawSession(t, l, url, nil)
	require.NoError(t, s.Close(uint16(reliable.CloseKicked), "bye"))
	op, p := serverFrame(t, br)
	require.Equal(t, byte(opClose), op)

	late := clientFrame(false, opBinary, key, []byte{channelDatagram, 1, 2})
	late = append(late, clientFrame(true, opContinuation, key, []byte{3, 4})...)
	late = append(late, clientFrame(true, opBinary, key, append([]byte{channelReliable}, frame(300)...))...)
	late = append(late, clientFrame(true, opClose, key, p[:2])...)
	start := time.Now()
	_, err := c.Write(late)
	require.NoError(t, err)
	_, err = br.ReadByte()
	require.ErrorIs(t, err, io.EOF, "the server closes the connection after the peer's close frame")
	require.Less(t, time.Since(start), closeLinger/2, "at the peer's close, not at the handshake's bound")
	s.Wait()
}

// A datagram over its limit is a protocol error, whoever reads it, also
// when its header comes alone and its channel byte later.
func TestServerRefusesALongDatagramInPieces(t *testing.T) {
	bothReaders(t, func(t *testing.T, cfg Config) {
		l, url := serve(t, cfg, false)
		c, _, s := rawSession(t, l, url, nil)
		key := [4]byte{1, 2, 3, 4}
		const n = 200_000
		h := binary.BigEndian.AppendUint64([]byte{finBit | opBinary, 0x80 | 127}, n)
		_, err := c.Write(append(h, key[:]...))
		require.NoError(t, err)
		time.Sleep(50 * time.Millisecond) // read alone
		_, err = c.Write([]byte{channelDatagram ^ key[0]})
		require.NoError(t, err)
		_, err = s.Read(make([]byte, 10))
		require.ErrorIs(t, err, reliable.ErrBadFrame)
		require.NotErrorIs(t, err, reliable.ErrFrameTooLarge)
		_ = s.Close(uint16(reliable.CloseProtocolError), "")
		s.Wait()
	})
}
