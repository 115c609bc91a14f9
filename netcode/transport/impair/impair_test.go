package impair_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/roomwire/roomwire/netcode/transport/impair"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	// window is how many packets the senders let be in flight towards a sink,
	// few enough that the receiver's socket buffer never overflows, so every
	// loss a test sees is the impairment's.
	window = 64
	// patience bounds every wait in these tests.
	patience = 15 * time.Second
)

// listen opens a UDP socket on loopback, closed when the test ends.
func listen(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newConn wraps a fresh loopback socket, closed when the test ends.
func newConn(t testing.TB, cfg impair.Config) *impair.Conn {
	t.Helper()
	c := impair.New(listen(t), cfg)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Test packets carry a sequence number, the send time and a filler pattern
// derived from the sequence number, so the receiver can check them intact.
const header = 16

func encode(buf []byte, seq uint64, sent time.Duration) []byte {
	n := header + int(seq%48)
	buf = buf[:n]
	binary.BigEndian.PutUint64(buf, seq)
	binary.BigEndian.PutUint64(buf[8:], uint64(sent))
	for i := header; i < n; i++ {
		buf[i] = byte(seq) + byte(i)
	}
	return buf
}

type arrival struct {
	seq        uint64
	sent, recv time.Duration // since the sink's start
	intact     bool
}

func decode(b []byte) arrival {
	if len(b) < header {
		return arrival{}
	}
	a := arrival{
		seq:  binary.BigEndian.Uint64(b),
		sent: time.Duration(binary.BigEndian.Uint64(b[8:])),
	}
	a.intact = len(b) == header+int(a.seq%48)
	for i := header; a.intact && i < len(b); i++ {
		a.intact = b[i] == byte(a.seq)+byte(i)
	}
	return a
}

// sink receives test packets on a plain socket and records them.
type sink struct {
	conn  *net.UDPConn
	start time.Time
	count atomic.Int64
	done  chan struct{}

	mu  sync.Mutex
	got []arrival
}

func newSink(t *testing.T) *sink {
	t.Helper()
	s := &sink{conn: listen(t), start: time.Now(), done: make(chan struct{})}
	_ = s.conn.SetReadBuffer(1 << 20)
	go s.run()
	t.Cleanup(func() {
		_ = s.conn.Close()
		<-s.done
	})
	return s
}

func (s *sink) run() {
	defer close(s.done)
	buf := make([]byte, 4096)
	for {
		n, _, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		a := decode(buf[:n])
		a.recv = time.Since(s.start)
		s.mu.Lock()
		s.got = append(s.got, a)
		s.mu.Unlock()
		s.count.Add(1)
	}
}

func (s *sink) arrivals() []arrival {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// inFlight is how many packets c has queued or sent towards s that s has not
// read yet. Only the sending goroutine may call it.
func (s *sink) inFlight(c *impair.Conn) int64 {
	st := c.Stats()
	return int64(st.Sent-st.Dropped+st.Duplicated) - s.count.Load()
}

// send writes packets 0..n-1 from c to s, keeping at most window in flight,
// and clears its buffer after each write to show WriteTo keeps no reference.
func (s *sink) send(t *testing.T, c *impair.Conn, n int) {
	t.Helper()
	dst := s.conn.LocalAddr()
	buf := make([]byte, 64)
	for i := range n {
		deadline := time.Now().Add(patience)
		for s.inFlight(c) >= window {
			if time.Now().After(deadline) {
				t.Fatalf("receiver stalled at packet %d: %+v, received %d", i, c.Stats(), s.count.Load())
			}
			time.Sleep(50 * time.Microsecond)
		}
		p := encode(buf, uint64(i), time.Since(s.start))
		k, err := c.WriteTo(p, dst)
		require.NoError(t, err)
		require.Equal(t, len(p), k)
		clear(buf)
	}
}

// wait waits until s has received want packets, then a little longer to catch
// any extra, and returns what arrived.
func (s *sink) wait(t *testing.T, want int) []arrival {
	t.Helper()
	deadline := time.Now().Add(patience)
	for s.count.Load() < int64(want) {
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d packets", s.count.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	got := s.arrivals()
	require.Len(t, got, want)
	for _, a := range got {
		require.True(t, a.intact, "packet %d corrupted", a.seq)
	}
	return got
}

// seqs returns the sequence numbers in arrival order.
func seqs(got []arrival) []uint64 {
	out := make([]uint64, len(got))
	for i, a := range got {
		out[i] = a.seq
	}
	return out
}

func TestPassThrough(t *testing.T) {
	const n = 1000
	c := newConn(t, impair.Config{})
	s := newSink(t)
	s.send(t, c, n)
	got := s.wait(t, n)
	for i, a := range got {
		require.Equal(t, uint64(i), a.seq, "out of order")
	}
	require.Equal(t, impair.Stats{Sent: n, Delivered: n}, c.Stats())
}

func TestLossIsSeeded(t *testing.T) {
	const n = 5000
	run := func(seed uint64) []uint64 {
		c := newConn(t, impair.Config{Seed: seed, Loss: 0.2})
		s := newSink(t)
		s.send(t, c, n)
		st := c.Stats()
		require.EqualValues(t, n, st.Sent)
		got := seqs(s.wait(t, int(st.Sent-st.Dropped)))
		slices.Sort(got)
		require.Len(t, slices.Compact(slices.Clone(got)), len(got), "a packet arrived twice")
		require.NoError(t, c.Close())
		require.Equal(t, st.Sent-st.Dropped, c.Stats().Delivered)
		return got
	}

	first := run(42)
	loss := 1 - float64(len(first))/n
	t.Logf("loss %.3f", loss)
	require.GreaterOrEqual(t, loss, 0.16)
	require.LessOrEqual(t, loss, 0.24)

	require.Equal(t, first, run(42), "the same seed dropped different packets")
	require.NotEqual(t, first, run(43), "a different seed dropped the same packets")
}

func TestDelayAndJitter(t *testing.T) {
	const (
		n      = 300
		delay  = 20 * time.Millisecond
		jitter = 10 * time.Millisecond
	)
	c := newConn(t, impair.Config{Seed: 1, Delay: delay, Jitter: jitter})
	s := newSink(t)
	s.send(t, c, n)
	got := s.wait(t, n)

	lat := make([]time.Duration, len(got))
	for i, a := range got {
		lat[i] = a.recv - a.sent
		require.GreaterOrEqual(t, lat[i], delay-jitter-time.Millisecond, "packet %d arrived early", a.seq)
	}
	slices.Sort(lat)
	median := lat[len(lat)/2]
	t.Logf("latency: min %v, median %v, max %v", lat[0], median, lat[len(lat)-1])
	require.GreaterOrEqual(t, median, 15*time.Millisecond)
	require.LessOrEqual(t, median, 35*time.Millisecond)
}

func TestReorder(t *testing.T) {
	const n = 500
	c := newConn(t, impair.Config{Seed: 7, Reorder: 0.3, Delay: 10 * time.Millisecond})
	s := newSink(t)
	s.send(t, c, n)
	got := seqs(s.wait(t, n))

	overtaken := 0
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			overtaken++
		}
	}
	require.Positive(t, overtaken, "no packet arrived out of order")
	require.Positive(t, c.Stats().Reordered)

	slices.Sort(got)
	for i, seq := range got {
		require.Equal(t, uint64(i), seq, "packet missing or duplicated")
	}
}

func TestReorderWithoutDelay(t *testing.T) {
	const n = 300
	c := newConn(t, impair.Config{Seed: 7, Reorder: 0.5})
	s := newSink(t)
	s.send(t, c, n)
	got := s.wait(t, n)
	require.False(t, slices.IsSortedFunc(got, func(a, b arrival) int { return int(a.seq) - int(b.seq) }),
		"Reorder alone held nothing back")
}

func TestDuplicate(t *testing.T) {
	const n = 1000
	c := newConn(t, impair.Config{Seed: 3, Duplicate: 0.5})
	s := newSink(t)
	s.send(t, c, n)
	st := c.Stats()
	require.Positive(t, st.Duplicated)
	got := s.wait(t, n+int(st.Duplicated))

	times := make([]int, n)
	for _, seq := range seqs(got) {
		require.Less(t, seq, uint64(n))
		times[seq]++
	}
	for seq, k := range times {
		require.True(t, k == 1 || k == 2, "packet %d arrived %d times", seq, k)
	}
}

func TestLargePacket(t *testing.T) {
	for _, cfg := range []impair.Config{{}, {Delay: time.Millisecond, Duplicate: 1}} {
		a := newConn(t, cfg)
		b := listen(t)
		msg := make([]byte, 9000)
		for i := range msg {
			msg[i] = byte(i * 7)
		}
		_, err := a.WriteToUDPAddrPort(msg, b.LocalAddr().(*net.UDPAddr).AddrPort())
		require.NoError(t, err)
		clear(msg)
		require.NoError(t, b.SetReadDeadline(time.Now().Add(patience)))
		buf := make([]byte, 10000)
		n, err := b.Read(buf)
		require.NoError(t, err)
		require.Equal(t, 9000, n)
		for i := range n {
			require.Equal(t, byte(i*7), buf[i], "byte %d", i)
		}
	}
}

func TestCloseDiscardsPending(t *testing.T) {
	c := impair.New(listen(t), impair.Config{Delay: time.Hour, Jitter: time.Minute, Duplicate: 0.5})
	dst := listen(t).LocalAddr()
	for i := range 100 {
		_, err := c.WriteTo(encode(make([]byte, 64), uint64(i), 0), dst)
		require.NoError(t, err)
	}

	start := time.Now()
	require.NoError(t, c.Close())
	require.Less(t, time.Since(start), 5*time.Second, "Close waited for pending packets")
	require.NoError(t, c.Close(), "second Close")
	goleak.VerifyNone(t)

	st := c.Stats()
	require.EqualValues(t, 100, st.Sent)
	require.Zero(t, st.Delivered)

	_, err := c.WriteTo([]byte("x"), dst)
	require.ErrorIs(t, err, net.ErrClosed)
	_, err = c.WriteToUDPAddrPort([]byte("x"), dst.(*net.UDPAddr).AddrPort())
	require.ErrorIs(t, err, net.ErrClosed)
	_, _, err = c.ReadFrom(make([]byte, 16))
	require.ErrorIs(t, err, net.ErrClosed)
	_, _, err = c.ReadFromUDPAddrPort(make([]byte, 16))
	require.ErrorIs(t, err, net.ErrClosed)
}

func TestClosePassThrough(t *testing.T) {
	c := impair.New(listen(t), impair.Config{})
	dst := listen(t).LocalAddr()
	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	_, err := c.WriteTo([]byte("x"), dst)
	require.ErrorIs(t, err, net.ErrClosed)
	_, err = c.WriteToUDPAddrPort([]byte("x"), dst.(*net.UDPAddr).AddrPort())
	require.ErrorIs(t, err, net.ErrClosed)
	goleak.VerifyNone(t)
}

// TestCloseWhileWriting closes a Conn under writers blocked on a full queue.
func TestCloseWhileWriting(t *testing.T) {
	c := impair.New(listen(t), impair.Config{Delay: time.Hour})
	dst := listen(t).LocalAddr().(*net.UDPAddr).AddrPort()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				if _, err := c.WriteToUDPAddrPort([]byte("x"), dst); err != nil {
					assert.ErrorIs(t, err, net.ErrClosed)
					return
				}
			}
		})
	}
	deadline := time.Now().Add(patience)
	for c.Stats().Sent < 4096 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	require.EqualValues(t, 4096, c.Stats().Sent, "the queue should fill and block writers")
	require.NoError(t, c.Close())
	wg.Wait()
	goleak.VerifyNone(t)
}

func TestAddrPortMethods(t *testing.T) {
	for name, cfg := range map[string]impair.Config{
		"pass-through": {},
		"impaired":     {Delay: time.Millisecond, Jitter: time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			a, b := newConn(t, cfg), newConn(t, cfg)
			aAddr := a.LocalAddr().(*net.UDPAddr).AddrPort()
			bAddr := b.LocalAddr().(*net.UDPAddr).AddrPort()
			require.NoError(t, a.SetReadDeadline(time.Now().Add(patience)))
			require.NoError(t, b.SetDeadline(time.Now().Add(patience)))
			buf := make([]byte, 64)

			k, err := a.WriteToUDPAddrPort([]byte("ping"), bAddr)
			require.NoError(t, err)
			require.Equal(t, 4, k)
			n, from, err := b.ReadFromUDPAddrPort(buf)
			require.NoError(t, err)
			require.Equal(t, "ping", string(buf[:n]))
			require.Equal(t, aAddr, from)

			k, err = b.WriteToUDPAddrPort([]byte("pong"), from)
			require.NoError(t, err)
			require.Equal(t, 4, k)
			n, fromAddr, err := a.ReadFrom(buf)
			require.NoError(t, err)
			require.Equal(t, "pong", string(buf[:n]))
			require.Equal(t, bAddr, fromAddr.(*net.UDPAddr).AddrPort())

			k, err = a.WriteTo([]byte("again"), fromAddr)
			require.NoError(t, err)
			require.Equal(t, 5, k)
			n, from, err = b.ReadFromUDPAddrPort(buf)
			require.NoError(t, err)
			require.Equal(t, "again", string(buf[:n]))
			require.Equal(t, aAddr, from)
		})
	}
}

func TestBadAddress(t *testing.T) {
	for name, cfg := range map[string]impair.Config{"pass-through": {}, "impaired": {Delay: time.Millisecond}} {
		t.Run(name, func(t *testing.T) {
			c := newConn(t, cfg)
			_, err := c.WriteTo([]byte("x"), &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
			var opErr *net.OpError
			require.ErrorAs(t, err, &opErr)
			require.Equal(t, "write", opErr.Op)
			_, err = c.WriteToUDPAddrPort([]byte("x"), netip.AddrPort{})
			require.Error(t, err)
		})
	}
}

func TestDeadlines(t *testing.T) {
	for name, cfg := range map[string]impair.Config{"pass-through": {}, "impaired": {Delay: time.Millisecond}} {
		t.Run(name, func(t *testing.T) {
			c := newConn(t, cfg)
			dst := listen(t).LocalAddr()

			require.NoError(t, c.SetWriteDeadline(time.Now().Add(-time.Second)))
			_, err := c.WriteTo([]byte("x"), dst)
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			var netErr net.Error
			require.ErrorAs(t, err, &netErr)
			require.True(t, netErr.Timeout())

			require.NoError(t, c.SetWriteDeadline(time.Time{}))
			_, err = c.WriteTo([]byte("x"), dst)
			require.NoError(t, err)

			require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Millisecond)))
			_, _, err = c.ReadFrom(make([]byte, 16))
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			_, err = c.WriteTo([]byte("x"), dst)
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		})
	}
}

// TestWriteDeadlineOnFullQueue checks that a writer blocked on a full queue
// gives up at its deadline.
func TestWriteDeadlineOnFullQueue(t *testing.T) {
	c := newConn(t, impair.Config{Delay: time.Hour})
	dst := listen(t).LocalAddr().(*net.UDPAddr).AddrPort()
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(patience)))
	for c.Stats().Sent < 4096 {
		_, err := c.WriteToUDPAddrPort([]byte("x"), dst)
		require.NoError(t, err)
	}
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(20*time.Millisecond)))
	_, err := c.WriteToUDPAddrPort([]byte("x"), dst)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
}

func TestSetConfig(t *testing.T) {
	c := newConn(t, impair.Config{})
	s := newSink(t)

	c.SetConfig(impair.Config{Loss: 1})
	s.send(t, c, 100)
	require.Equal(t, impair.Stats{Sent: 100, Dropped: 100}, c.Stats())

	c.SetConfig(impair.Config{})
	s.send(t, c, 100)
	s.wait(t, 100)
	require.Equal(t, impair.Stats{Sent: 200, Dropped: 100, Delivered: 100}, c.Stats())
}

// TestSetConfigConcurrent changes the impairment under concurrent writers;
// run it with -race.
func TestSetConfigConcurrent(t *testing.T) {
	c := newConn(t, impair.Config{})
	dst := listen(t).LocalAddr().(*net.UDPAddr).AddrPort()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.WriteToUDPAddrPort([]byte("x"), dst); !assert.NoError(t, err) {
					return
				}
			}
		})
	}
	cfgs := []impair.Config{
		{},
		{Seed: 1, Loss: 0.5},
		{Seed: 2, Delay: time.Millisecond, Jitter: time.Millisecond, Reorder: 0.2, Duplicate: 0.2},
	}
	for i := range 300 {
		c.SetConfig(cfgs[i%len(cfgs)])
		time.Sleep(100 * time.Microsecond)
	}
	close(stop)
	wg.Wait()
	require.NoError(t, c.Close())
	st := c.Stats()
	require.LessOrEqual(t, st.Delivered, st.Sent-st.Dropped+st.Duplicated)
}

func TestConfigOutOfRange(t *testing.T) {
	c := newConn(t, impair.Config{Loss: 7, Delay: -time.Second, Jitter: -time.Second})
	s := newSink(t)
	s.send(t, c, 10)
	require.EqualValues(t, 10, c.Stats().Dropped)
}

func BenchmarkWriteTo(b *testing.B) {
	for name, cfg := range map[string]impair.Config{
		"pass-through": {},
		"impaired":     {Seed: 1, Loss: 0.01, Delay: 100 * time.Microsecond, Jitter: 50 * time.Microsecond},
	} {
		b.Run(name, func(b *testing.B) {
			c := newConn(b, cfg)
			dst := listen(b).LocalAddr().(*net.UDPAddr).AddrPort()
			msg := make([]byte, 100)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.WriteToUDPAddrPort(msg, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
