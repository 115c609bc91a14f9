package netcode_test

import (
	"context"
	"crypto/tls"
	"io"
	"sort"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/reliable"
)

// The round-trip benchmarks measure one 64-byte ping-pong at a time and
// report the median (p50_us) beside ns/op, so the library's round trips can
// be set against bare quic-go's, measured the same way in the same run.

const rttPayload = 64

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

// BenchmarkBareQUICStreamEcho is the floor for BenchmarkEventRoundTrip.
func BenchmarkBareQUICStreamEcho(b *testing.B) {
	cl, sv, done := quicPair(b)
	defer done()
	st, err := cl.OpenStreamSync(context.Background())
	require.NoError(b, err)
	msg := make([]byte, rttPayload)
	_, err = st.Write(msg)
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
	_, err = io.ReadFull(st, buf) // the first message's echo
	require.NoError(b, err)
	r := make(rtts, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := st.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(st, buf); err != nil {
			b.Fatal(err)
		}
		r = append(r, time.Since(start))
	}
	b.StopTimer()
	r.report(b)
	done()
	<-echoDone
}

// BenchmarkBareQUICDatagramEcho is the floor for BenchmarkDatagramRoundTrip.
func BenchmarkBareQUICDatagramEcho(b *testing.B) {
	cl, sv, done := quicPair(b)
	defer done()
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
	r := make(rtts, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		require.NoError(b, cl.SendDatagram(msg))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cl.ReceiveDatagram(ctx)
		cancel()
		if err != nil {
			continue // lost on loopback under load: not a round trip
		}
		r = append(r, time.Since(start))
	}
	b.StopTimer()
	r.report(b)
	done()
	<-echoDone
}

// BenchmarkEventRoundTrip is a client Request answered by a server handler:
// the library's acknowledgement round trip.
func BenchmarkEventRoundTrip(b *testing.B) {
	nt.EachB(b, func(b *testing.B, tr nt.Transport) {
		srv := nt.Server(b, tr, nil, func(s *netcode.Server) {
			s.Handle("echo", func(_ *netcode.Conn, req []byte) ([]byte, error) { return req, nil })
		})
		cl := nt.Client(b, tr, srv, nil)
		msg := make([]byte, rttPayload)
		ctx := context.Background()
		r := make(rtts, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if _, err := cl.Request(ctx, "echo", msg); err != nil {
				b.Fatal(err)
			}
			r = append(r, time.Since(start))
		}
		b.StopTimer()
		r.report(b)
	})
}

// BenchmarkDatagramRoundTrip is a client input datagram echoed by the server
// as a snapshot datagram.
func BenchmarkDatagramRoundTrip(b *testing.B) {
	nt.EachB(b, func(b *testing.B, tr nt.Transport) {
		var tick uint32
		srv := nt.Server(b, tr, nil, func(s *netcode.Server) {
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
			c.OnSnapshot(func(uint32, []byte) { got <- struct{}{} })
		})
		msg := make([]byte, rttPayload)
		r := make(rtts, 0, b.N)
		timer := time.NewTimer(time.Hour)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if err := cl.SendInput(msg); err != nil {
				b.Fatal(err)
			}
			timer.Reset(time.Second)
			select {
			case <-got:
				r = append(r, time.Since(start))
			case <-timer.C: // lost on loopback under load
			}
		}
		b.StopTimer()
		r.report(b)
	})
}

// BenchmarkConnEmit is the cost of queueing one 64-byte event for a
// connection: encoding straight into its outbox.
func BenchmarkConnEmit(b *testing.B) {
	tr := nt.Find("mem")
	srv := nt.Server(b, tr, nil, nil)
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
