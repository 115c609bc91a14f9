package kcp

import (
	"io"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	kcpgo "github.com/xtaci/kcp-go/v5"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport/secure"
)

// echo is a stream echoed by a goroutine on the other side: one round
// trip per call.
type echo func() error

func echoOn(b *testing.B, cl, sv io.ReadWriter) echo {
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := io.ReadFull(sv, buf); err != nil {
				return
			}
			if _, err := sv.Write(buf); err != nil {
				return
			}
		}
	}()
	msg, buf := make([]byte, 64), make([]byte, 64)
	return func() error {
		if _, err := cl.Write(msg); err != nil {
			return err
		}
		_, err := io.ReadFull(cl, buf)
		return err
	}
}

// bareEcho is kcp-go's UDPSession with the transport's settings.
func bareEcho(b *testing.B) echo {
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
	_, err = cl.Write(make([]byte, 64)) // the listener sees the session once it has data
	require.NoError(b, err)
	sv, err := ln.AcceptKCP()
	require.NoError(b, err)
	tune(sv)
	_, err = io.ReadFull(sv, make([]byte, 64))
	require.NoError(b, err)
	b.Cleanup(func() { _ = cl.Close(); _ = sv.Close(); _ = ln.Close() })
	return echoOn(b, cl, sv)
}

// BenchmarkEchoVsKCPGo sets a 64-byte echo over a Session against one over
// kcp-go's UDPSession with the same KCP settings, in turn: the transport's
// own share of a round trip.
func BenchmarkEchoVsKCPGo(b *testing.B) {
	base := bareEcho(b)
	l := listen(b, Config{})
	c := dial(b, l, testToken(b, token.DevKey, time.Minute))
	lib := echoOn(b, c, accept(b, l))
	var rb, rl []time.Duration
	for range 200 {
		require.NoError(b, base())
		require.NoError(b, lib())
	}
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		require.NoError(b, base())
		rb = append(rb, time.Since(start))
		start = time.Now()
		require.NoError(b, lib())
		rl = append(rl, time.Since(start))
	}
	b.StopTimer()
	median := func(r []time.Duration) time.Duration {
		sort.Slice(r, func(i, j int) bool { return r[i] < r[j] })
		return r[len(r)/2]
	}
	pb, pl := median(rb), median(rl)
	b.ReportMetric(float64(pb.Nanoseconds())/1e3, "kcpgo_p50_us")
	b.ReportMetric(float64(pl.Nanoseconds())/1e3, "session_p50_us")
	b.ReportMetric(float64(pl)/float64(pb), "ratio")
}

// BenchmarkSessionEcho is a 64-byte echo over a Session alone.
func BenchmarkSessionEcho(b *testing.B) {
	l := listen(b, Config{})
	c := dial(b, l, testToken(b, token.DevKey, time.Minute))
	lib := echoOn(b, c, accept(b, l))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		require.NoError(b, lib())
	}
}
