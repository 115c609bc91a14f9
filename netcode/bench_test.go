package netcode_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/coder/websocket"
	quicgo "github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"
	kcpgo "github.com/xtaci/kcp-go/v5"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/transport/secure"
	"github.com/roomwire/roomwire/reliable"
)

// The round-trip benchmarks measure one 64-byte ping-pong at a time and
// report the median (p50_us) beside ns/op, so the library's round trips can
// be set against bare quic-go's, measured the same way in the same run.

const rttPayload = 64

// benchConfig gives the benchmarks' server budgets so large that one round
// trip after another never exhausts them, while every budget check still
// runs: their cost is in the figures.
func benchConfig() *netcode.Config {
	huge := netcode.Rate{PerSecond: 1e12, Burst: 1 << 40}
	return &netcode.Config{Budgets: netcode.Budgets{Events: huge, EventBytes: huge, Datagrams: huge}}
}

type rtts []time.Duration

func (r rtts) report(b *testing.B) {
	if len(r) == 0 {
		return
	}
	sort.Slice(r, func(i, j int) bool { return r[i] < r[j] })
	b.ReportMetric(float64(r[len(r)/2].Nanoseconds())/1e3, "p50_us")
	b.ReportMetric(float64(r[len(r)*99/100].Nanoseconds())/1e3, "p99_us")
}

func quicPair(b *testing.B) (*quicgo.Conn, *quicgo.Conn, func()) {
	tc, err := netcode.DevTLSConfig()
	require.NoError(b, err)
	tc.NextProtos = []string{"bench"}
	qc := &quicgo.Config{EnableDatagrams: true}
	ln, err := quicgo.ListenAddr("127.0.0.1:0", tc, qc)
	require.NoError(b, err)
	accepted := make(chan *quicgo.Conn, 1)
	go func() {
		c, err := ln.Accept(context.Background())
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	cl, err := quicgo.DialAddr(context.Background(), ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"bench"}}, qc)
	require.NoError(b, err)
	sv := <-accepted
	return cl, sv, func() {
		_ = cl.CloseWithError(0, "")
		_ = sv.CloseWithError(0, "")
		_ = ln.Close()
	}
}

// bareStreamEcho is a quic-go stream echoed by a goroutine on the other
// side: the floor for the library's request round trip.
func bareStreamEcho(b *testing.B) (pingPong, func()) {
	cl, sv, done := quicPair(b)
	st, err := cl.OpenStreamSync(context.Background())
	require.NoError(b, err)
	msg := make([]byte, rttPayload)
	_, err = st.Write(msg) // the peer sees the stream once it has data
	require.NoError(b, err)
	ss, err := sv.AcceptStream(context.Background())
	require.NoError(b, err)
	echoDone := make(chan struct{})
	go func() {
		defer close(echoDone)
		buf := make([]byte, rttPayload)
		for {
			if _, err := io.ReadFull(ss, buf); err != nil {
				return
			}
			if _, err := ss.Write(buf); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, rttPayload)
	_, err = io.ReadFull(st, buf)
	require.NoError(b, err)
	return func() bool {
			if _, err := st.Write(msg); err != nil {
				b.Fatal(err)
			}
			_, err := io.ReadFull(st, buf)
			return err == nil
		}, func() {
			done()
			<-echoDone
		}
}

// bareDatagramEcho is quic-go datagrams echoed by a goroutine on the other
// side: the floor for the library's datagram round trip.
func bareDatagramEcho(b *testing.B) (pingPong, func()) {
	cl, sv, done := quicPair(b)
	echoDone := make(chan struct{})
	go func() {
		defer close(echoDone)
		for {
			d, err := sv.ReceiveDatagram(context.Background())
			if err != nil {
				return
			}
			if err := sv.SendDatagram(d); err != nil {
				return
			}
		}
	}()
	msg := make([]byte, rttPayload)
	return func() bool {
			require.NoError(b, cl.SendDatagram(msg))
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := cl.ReceiveDatagram(ctx) // a loss on a loaded loopback is no round trip
			return err == nil
		}, func() {
			done()
			<-echoDone
		}
}

// libRequest is the library's request/reply round trip over tr.
func libRequest(b *testing.B, tr nt.Transport) pingPong {
	srv := nt.Server(b, tr, benchConfig(), func(s *netcode.Server) {
		s.Handle("echo", func(_ *netcode.Conn, req []byte) ([]byte, error) { return req, nil })
	})
	cl := nt.Client(b, tr, srv, nil)
	msg := make([]byte, rttPayload)
	return func() bool {
		if _, err := cl.Request(context.Background(), "echo", msg); err != nil {
			b.Fatal(err)
		}
		return true
	}
}

// libDatagram is the library's datagram round trip over tr: an input
// echoed by the server as a snapshot.
func libDatagram(b *testing.B, tr nt.Transport) pingPong {
	var tick uint32
	srv := nt.Server(b, tr, benchConfig(), func(s *netcode.Server) {
		s.OnInput(func(c *netcode.Conn, d []byte) {
			tick++
			snap := netcode.NewSnapshot(tick)
			snap.Data = append(snap.Data, d...)
			c.SendSnapshot(snap)
			snap.Release()
		})
	})
	got := make(chan struct{}, 1)
	cl := nt.Client(b, tr, srv, func(c *netcode.Client) {
		c.OnSnapshot(func(uint32, []byte) {
			select {
			case got <- struct{}{}:
			default:
			}
		})
	})
	msg := make([]byte, rttPayload)
	timer := time.NewTimer(time.Hour)
	return func() bool {
		if err := cl.SendInput(msg); err != nil {
			b.Fatal(err)
		}
		timer.Reset(time.Second)
		select {
		case <-got:
			return true
		case <-timer.C: // lost on a loaded loopback
			return false
		}
	}
}

// measure runs b.N round trips and reports their median and 99th
// percentile.
func measure(b *testing.B, rt pingPong) {
	r := make(rtts, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if rt() {
			r = append(r, time.Since(start))
		}
	}
	b.StopTimer()
	r.report(b)
}

// BenchmarkEventRoundTrip is a client Request answered by a server handler:
// the library's acknowledgement round trip, on every transport.
func BenchmarkEventRoundTrip(b *testing.B) {
	nt.EachB(b, func(b *testing.B, tr nt.Transport) { measure(b, libRequest(b, tr)) })
}

// BenchmarkDatagramRoundTrip is a client input datagram echoed by the server
// as a snapshot datagram, on every transport.
func BenchmarkDatagramRoundTrip(b *testing.B) {
	nt.EachB(b, func(b *testing.B, tr nt.Transport) { measure(b, libDatagram(b, tr)) })
}

// BenchmarkConnEmit is the cost of queueing one 64-byte event for a
// connection: encoding straight into its outbox.
func BenchmarkConnEmit(b *testing.B) {
	tr := nt.Find("mem")
	// Unpaced, the emits outrun the reader; a queue bound this large keeps
	// the connection open for the whole run.
	srv := nt.Server(b, tr, &netcode.Config{MaxQueued: 1 << 30}, nil)
	cl := nt.Client(b, tr, srv, nil)
	conn := srv.Conn(cl.ID())
	msg := make([]byte, rttPayload)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := conn.Emit("state", msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendEventFrame(b *testing.B) {
	buf := make([]byte, 0, 256)
	msg := make([]byte, rttPayload)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf, _ = reliable.AppendEvent(buf[:0], "state", msg)
	}
}

// pingPong is one round trip of some kind.
type pingPong func() bool

// interleave alternates round trips of the baseline and the library, so that
// both see the same machine load, and reports each median and their ratio.
func interleave(b *testing.B, base, lib pingPong) {
	rb := make(rtts, 0, b.N)
	rl := make(rtts, 0, b.N)
	for i := 0; i < 200; i++ { // warm up both paths
		base()
		lib()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if base() {
			rb = append(rb, time.Since(start))
		}
		start = time.Now()
		if lib() {
			rl = append(rl, time.Since(start))
		}
	}
	b.StopTimer()
	if len(rb) == 0 || len(rl) == 0 {
		b.Fatal("no round trip completed")
	}
	sort.Slice(rb, func(i, j int) bool { return rb[i] < rb[j] })
	sort.Slice(rl, func(i, j int) bool { return rl[i] < rl[j] })
	pb, pl := rb[len(rb)/2], rl[len(rl)/2]
	b.ReportMetric(float64(pb.Nanoseconds())/1e3, "bare_p50_us")
	b.ReportMetric(float64(pl.Nanoseconds())/1e3, "lib_p50_us")
	b.ReportMetric(float64(pl)/float64(pb), "ratio")
}

// BenchmarkRatioEventVsStreamEcho sets the library's request/reply round
// trip over QUIC against a bare quic-go stream echo, one of each in turn.
func BenchmarkRatioEventVsStreamEcho(b *testing.B) {
	base, done := bareStreamEcho(b)
	defer done()
	interleave(b, base, libRequest(b, nt.Find("quic")))
}

// BenchmarkRatioDatagramVsDatagramEcho sets the library's input → snapshot
// datagram round trip over QUIC against a bare quic-go datagram echo.
func BenchmarkRatioDatagramVsDatagramEcho(b *testing.B) {
	base, done := bareDatagramEcho(b)
	defer done()
	interleave(b, base, libDatagram(b, nt.Find("quic")))
}

// bareKCPEcho is a kcp-go session echoed by a goroutine on the other side,
// with the settings Roomwire's KCP transport uses: the floor for the
// library's request round trip over KCP.
func bareKCPEcho(b *testing.B) (pingPong, func()) {
	tune := func(s *kcpgo.UDPSession) {
		s.SetNoDelay(1, 10, 2, 1)
		s.SetWindowSize(256, 256)
		s.SetMtu(secure.MaxPayload)
		s.SetStreamMode(true)
		s.SetWriteDelay(false)
		s.SetACKNoDelay(true)
	}
	ln, err := kcpgo.ListenWithOptions("127.0.0.1:0", nil, 0, 0)
	require.NoError(b, err)
	cl, err := kcpgo.DialWithOptions(ln.Addr().String(), nil, 0, 0)
	require.NoError(b, err)
	tune(cl)
	msg := make([]byte, rttPayload)
	_, err = cl.Write(msg) // the listener sees the session once it has data
	require.NoError(b, err)
	sv, err := ln.AcceptKCP()
	require.NoError(b, err)
	tune(sv)
	echoDone := make(chan struct{})
	go func() {
		defer close(echoDone)
		buf := make([]byte, rttPayload)
		for {
			if _, err := io.ReadFull(sv, buf); err != nil {
				return
			}
			if _, err := sv.Write(buf); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, rttPayload)
	_, err = io.ReadFull(cl, buf)
	require.NoError(b, err)
	return func() bool {
			if _, err := cl.Write(msg); err != nil {
				b.Fatal(err)
			}
			_, err := io.ReadFull(cl, buf)
			return err == nil
		}, func() {
			_ = cl.Close()
			_ = sv.Close()
			_ = ln.Close()
			<-echoDone
		}
}

// BenchmarkRatioEventVsKCPEcho sets the library's request/reply round trip
// over KCP (under the secure layer) against a bare kcp-go echo with the
// same KCP settings, one of each in turn.
func BenchmarkRatioEventVsKCPEcho(b *testing.B) {
	base, done := bareKCPEcho(b)
	defer done()
	interleave(b, base, libRequest(b, nt.Find("kcp")))
}

// bareWebSocketEcho is a coder/websocket connection on loopback echoed by
// the server's handler goroutine, binary messages read and written whole:
// the floor for the library's request round trip over WebSocket.
func bareWebSocketEcho(b *testing.B) (pingPong, func()) {
	echoDone := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer close(echoDone)
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if err := c.Write(context.Background(), typ, msg); err != nil {
				return
			}
		}
	}))
	cl, _, err := websocket.Dial(context.Background(), "ws://"+hs.Listener.Addr().String(), &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{}},
	})
	require.NoError(b, err)
	msg := make([]byte, rttPayload)
	return func() bool {
			if err := cl.Write(context.Background(), websocket.MessageBinary, msg); err != nil {
				b.Fatal(err)
			}
			_, _, err := cl.Read(context.Background())
			return err == nil
		}, func() {
			_ = cl.CloseNow()
			<-echoDone
			hs.Close()
		}
}

// BenchmarkRatioEventVsWebSocketEcho sets the library's request/reply
// round trip over WebSocket against a bare coder/websocket echo on
// loopback, one of each in turn.
func BenchmarkRatioEventVsWebSocketEcho(b *testing.B) {
	base, done := bareWebSocketEcho(b)
	defer done()
	interleave(b, base, libRequest(b, nt.Find("ws")))
}
