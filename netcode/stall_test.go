package netcode_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/reliable"
)

// A peer that begins a frame and goes silent is closed with CloseTimeout
// within FrameTimeout, and counted; another client goes on.
func TestHalfFrameThenSilence(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		srv := nt.Server(t, tr, &netcode.Config{FrameTimeout: 300 * time.Millisecond}, func(s *netcode.Server) {
			s.Handle("echo", func(_ *netcode.Conn, p []byte) ([]byte, error) { return p, nil })
		})
		honest := nt.Client(t, tr, srv, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		raw, err := tr.Raw(ctx, srv)
		require.NoError(t, err)
		defer raw.Close(0, "")
		helloRaw(t, raw)
		readWelcome(t, raw)
		frame := rawFrame(byte(reliable.FrameEvent), append([]byte{1, 'e'}, make([]byte, 98)...))
		start := time.Now()
		_, err = raw.Write(frame[:20]) // the header and a little of the body, then nothing
		require.NoError(t, err)
		code, reason := closeOf(t, raw)
		require.Equal(t, reliable.CloseTimeout, code)
		require.Contains(t, reason, "not completed within 300ms")
		require.Less(t, time.Since(start), 5*time.Second)
		nt.Eventually(t, func() bool { return srv.Metrics().Closes["timeout"] == 1 }, "the close counted")

		rep, err := honest.Request(ctx, "echo", []byte("still here"))
		require.NoError(t, err)
		require.Equal(t, "still here", string(rep))
	})
}

// A client that pipelines requests and never reads the replies is closed
// as a slow consumer once a write has waited WriteTimeout: no goroutine of
// the server stays blocked on it, and another client goes on.
func TestNonReadingRequester(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		big := make([]byte, 60<<10)
		reasons := make(chan string, 4)
		srv := nt.Server(t, tr, &netcode.Config{WriteTimeout: 500 * time.Millisecond}, func(s *netcode.Server) {
			s.Handle("big", func(_ *netcode.Conn, _ []byte) ([]byte, error) { return big, nil })
			s.OnDisconnect(func(_ *netcode.Conn, ce *netcode.CloseError) { reasons <- ce.Reason })
		})
		honest := nt.Client(t, tr, srv, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		raw, err := tr.Raw(ctx, srv)
		require.NoError(t, err)
		defer raw.Close(0, "")
		helloRaw(t, raw)
		id := readWelcome(t, raw)
		var reqs []byte
		for i := uint32(1); i <= 200; i++ { // 12 MB of replies asked for
			body := binary.BigEndian.AppendUint32(nil, i)
			body = append(append(body, 3), "big"...)
			reqs = append(reqs, rawFrame(byte(reliable.FrameRequest), body)...)
		}
		start := time.Now()
		go func() { _, _ = raw.Write(reqs) }() // may block: the server stops reading us
		nt.Eventually(t, func() bool { return srv.Conn(id) == nil }, "the non-reading client closed")
		took := time.Since(start)
		require.Less(t, took, 8*time.Second)
		m := srv.Metrics()
		require.Equal(t, uint64(1), m.Closes["slow_consumer"], "closes %v", m.Closes)
		// Whichever bound it meets first: a write that waits 500 ms, or (when
		// the writer goroutine held the write turn and replies piled up
		// behind it) the 1 MiB queue.
		reason := nt.Recv(t, reasons, "the close reason")
		require.True(t, strings.Contains(reason, "a write was not taken within 500ms") || strings.Contains(reason, "unsent bytes queued"), reason)
		t.Logf("%s: closed after %v", tr.Name, took)

		rep, err := honest.Request(ctx, "big", nil)
		require.NoError(t, err)
		require.Len(t, rep, len(big))
	})
}

// A client's requests to a server that stopped reading it (its handler
// holds the read loop) each return by their deadline, even once the
// socket's buffers are full: a request is written on its caller's
// goroutine only when the transport says the write would not wait.
func TestRequestsToANonReadingServerKeepTheirDeadlines(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		release := make(chan struct{})
		held := make(chan struct{}, 1)
		srv := nt.Server(t, tr, nil, func(s *netcode.Server) {
			s.Handle("hold", func(_ *netcode.Conn, _ []byte) ([]byte, error) {
				held <- struct{}{}
				<-release
				return nil, nil
			})
			s.Handle("big", func(_ *netcode.Conn, p []byte) ([]byte, error) { return nil, nil })
		})
		cl := nt.Client(t, tr, srv, nil)
		defer close(release)
		go func() { _, _ = cl.Request(context.Background(), "hold", nil) }()
		nt.Recv(t, held, "the server's read loop held")
		// 200 requests of 60 KB: 12 MB, more than loopback's socket buffers
		// on both sides hold, so that writes would block before the end;
		// and a short one after each, which may be written inline.
		big := make([]byte, 60<<10)
		for i := range 400 {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			start := time.Now()
			_, err := cl.Request(ctx, "big", big[:(1-i%2)*len(big)+i%2*100])
			took := time.Since(start)
			cancel()
			require.Error(t, err, "request %d got a reply from a server that does not read", i)
			require.Less(t, took, time.Second, "request %d returned %v after its 20ms deadline: %v", i, took, err)
			if !errors.Is(err, netcode.ErrRequestTimeout) {
				break // the client's queue passed its bound: the connection ended, and so the test
			}
		}
	})
}
