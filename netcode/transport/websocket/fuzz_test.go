package websocket

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// byteConn is a connection that reads what it was made with, then EOF,
// and takes every write.
type byteConn struct{ r *bytes.Reader }

func (c *byteConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}
func (c *byteConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *byteConn) Close() error                     { return nil }
func (c *byteConn) LocalAddr() net.Addr              { return textAddr("local") }
func (c *byteConn) RemoteAddr() net.Addr             { return textAddr("remote") }
func (c *byteConn) SetDeadline(time.Time) error      { return nil }
func (c *byteConn) SetReadDeadline(time.Time) error  { return nil }
func (c *byteConn) SetWriteDeadline(time.Time) error { return nil }

// A server's session reads any bytes a client sends without panicking,
// holding more than the limits or hanging: its Read ends at the bytes'
// end, on the peer's close or on the first breach of the format.
func FuzzServerFrames(f *testing.F) {
	key := [4]byte{9, 8, 7, 6}
	f.Add(clientFrame(true, opBinary, key, []byte{channelReliable, 1, 0, 0, 1, 'x'}))
	f.Add(append(clientFrame(false, opBinary, key, []byte{channelDatagram, 1}), clientFrame(true, opContinuation, key, []byte{2, 3})...))
	f.Add(clientFrame(true, opPing, key, []byte("hi")))
	f.Add(clientFrame(true, opClose, key, []byte{0x0f, 0xa0, 'b'}))
	f.Add([]byte{finBit | opBinary, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := Config{MaxFrame: 1024}
		cfg.populate()
		s := newSession(nil, &byteConn{r: bytes.NewReader(in)}, new(activity), &cfg, &serverSide{})
		s.HandleDatagrams(func(p []byte) {
			if len(p) > MaxDatagram {
				t.Fatalf("a datagram of %d bytes", len(p))
			}
		})
		read := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, s); close(read) }()
		select {
		case <-read:
		case <-time.After(5 * time.Second):
			t.Fatal("the reader did not end at the input's end")
		}
		_ = s.Close(0, "")
		s.Wait()
		if len(s.fr.buf) > 2*readChunk && s.fr.r == s.fr.w {
			t.Fatalf("a %d-byte read buffer kept", len(s.fr.buf))
		}
	})
}
