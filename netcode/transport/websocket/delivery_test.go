package websocket

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/reliable"
)

// rawPeer dials url with the bare WebSocket library, to send what a
// Session never would; it is closed when the test ends.
func rawPeer(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{Subprotocol}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// A message that breaks the format ends reading with the error netcode
// closes for (protocol error, frame too large), after the good bytes before
// it; the close then reaches the peer as 4000 + the code.
func TestBadMessages(t *testing.T) {
	cases := []struct {
		name string
		typ  websocket.MessageType
		msg  []byte
		want error
	}{
		{"text message", websocket.MessageText, []byte("\x00hello"), reliable.ErrBadFrame},
		{"empty message", websocket.MessageBinary, nil, reliable.ErrBadFrame},
		{"unknown channel", websocket.MessageBinary, []byte{7, 1, 2}, reliable.ErrBadFrame},
		{"datagram over 1200 bytes", websocket.MessageBinary, append([]byte{channelDatagram}, make([]byte, MaxDatagram+1)...), reliable.ErrBadFrame},
		{"reliable message over the frame limit + 5", websocket.MessageBinary, append([]byte{channelReliable}, make([]byte, 1024+5)...), reliable.ErrFrameTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, url := serve(t, Config{MaxFrame: 1024}, false)
			peer := rawPeer(t, url)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := l.Accept(ctx)
			require.NoError(t, err)
			require.NoError(t, peer.Write(ctx, websocket.MessageBinary, []byte{channelReliable, 'o', 'k'}))
			require.NoError(t, peer.Write(ctx, tc.typ, tc.msg))
			buf := make([]byte, 16)
			n, err := s.Read(buf)
			require.NoError(t, err)
			require.Equal(t, "ok", string(buf[:n]))
			_, err = s.Read(buf)
			require.ErrorIs(t, err, tc.want)

			require.NoError(t, s.Close(uint16(reliable.CloseProtocolError), err.Error()))
			_, _, err = peer.Read(ctx)
			require.Equal(t, websocket.StatusCode(4002), websocket.CloseStatus(err), "%v", err)
			s.(*Session).Wait()
		})
	}
}

// A peer that sends nothing and answers no ping is closed after the idle
// timeout, as QUIC does, with code 10 reported locally.
func TestIdleTimeout(t *testing.T) {
	l, url := serve(t, Config{IdleTimeout: 300 * time.Millisecond}, false)
	_ = rawPeer(t, url) // never reads, so never answers a ping
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := l.Accept(ctx)
	require.NoError(t, err)
	start := time.Now()
	_, err = s.Read(make([]byte, 1))
	ce, ok := transport.AsCloseError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, uint16(reliable.CloseTimeout), ce.Code)
	require.Equal(t, "idle timeout", ce.Reason)
	require.False(t, ce.Remote)
	require.InDelta(t, 0.3, time.Since(start).Seconds(), 0.3)
	s.(*Session).Wait()

	// A peer that answers pings stays, though it sends nothing of its own.
	c, s2 := pair(t, Config{IdleTimeout: 300 * time.Millisecond})
	go func() { _, _ = io.Copy(io.Discard, s2) }() // reads the pongs, as netcode's read loop would
	select {
	case <-s2.Done():
		t.Fatal("an idle peer that answers pings was closed")
	case <-c.Done():
		t.Fatal("the client closed")
	case <-time.After(time.Second):
	}
}

// The reliable stream goes before datagrams: a datagram waiting for the
// turn lets a reliable write that came later go first.
func TestReliableFirst(t *testing.T) {
	var tn turn
	tn.cond.L = &tn.mu
	require.True(t, tn.take(false)) // a datagram is being written
	var order []string
	got := make(chan string, 2)
	go func() {
		tn.take(false)
		got <- "datagram"
		tn.give()
	}()
	time.Sleep(20 * time.Millisecond) // the second datagram waits
	go func() {
		tn.take(true)
		got <- "reliable"
		tn.give()
	}()
	time.Sleep(20 * time.Millisecond) // and the reliable write behind it
	tn.give()
	order = append(order, <-got, <-got)
	require.Equal(t, []string{"reliable", "datagram"}, order)
	tn.close()
	require.False(t, tn.take(true))
}

// A peer that stops reading: once its window is full, datagram writes
// block while the kernel holds a message unsent (TCP_NOTSENT_LOWAT 1 and
// MSG_EOR), instead of queueing more below netcode's one-snapshot queue.
// Without the low-water mark, megabytes wait in the kernel.
func TestDatagramsBlockWhenTheSocketIsFull(t *testing.T) {
	for _, lowat := range []int{-1, 0} {
		t.Run(fmt.Sprintf("lowat=%d", lowat), func(t *testing.T) {
			l, url := serve(t, Config{NotSentLowat: lowat}, false)
			_ = rawPeer(t, url) // never reads
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ts, err := l.Accept(ctx)
			require.NoError(t, err)
			s := ts.(*Session)
			var sent atomic.Int64
			go func() {
				d := make([]byte, MaxDatagram)
				for s.SendDatagram(d) == nil {
					sent.Add(1)
				}
			}()
			for last := int64(-1); ; { // until the sender is stuck
				time.Sleep(100 * time.Millisecond)
				if n := sent.Load(); n == last {
					break
				} else {
					last = n
				}
			}
			unsent, ok := notSent(s.conn)
			t.Logf("TCP_NOTSENT_LOWAT %d: %d datagrams written, then blocked; %d bytes unsent in the kernel", l.cfg.NotSentLowat, sent.Load(), unsent)
			if lowat == 0 && ok {
				require.LessOrEqual(t, unsent, defaultNotSentLowat+MaxDatagram+8, "the kernel holds at most one message unsent")
			}
			_ = s.Close(0, "")
			s.Wait()
		})
	}
}
