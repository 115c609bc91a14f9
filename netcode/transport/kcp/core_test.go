package kcp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	kcpgo "github.com/xtaci/kcp-go/v5"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/secure"
)

// Sessions driven by hand: two sessions whose sockets keep what is written
// until the test delivers it to the other side, with no goroutines.

// heldConn is a PacketConn that keeps each written packet, in buffers it
// reuses.
type heldConn struct {
	mu     sync.Mutex
	pkts   [][]byte
	free   [][]byte
	closed chan struct{}
	once   sync.Once
}

func newHeldConn() *heldConn { return &heldConn{closed: make(chan struct{})} }

func (c *heldConn) WriteToUDPAddrPort(b []byte, _ netip.AddrPort) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var buf []byte
	if n := len(c.free); n > 0 {
		buf, c.free = c.free[n-1], c.free[:n-1]
	} else {
		buf = make([]byte, 0, secure.MaxPacket)
	}
	c.pkts = append(c.pkts, append(buf[:0], b...))
	return len(b), nil
}

func (c *heldConn) ReadFromUDPAddrPort([]byte) (int, netip.AddrPort, error) {
	<-c.closed
	return 0, netip.AddrPort{}, net.ErrClosed
}

func (c *heldConn) SetReadDeadline(time.Time) error { return nil }
func (c *heldConn) LocalAddr() net.Addr             { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *heldConn) Close() error                    { c.once.Do(func() { close(c.closed) }); return nil }

// held returns how many packets wait.
func (c *heldConn) held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pkts)
}

// handPair is two sessions, a and b, each on a heldConn.
type handPair struct {
	a, b    *Session
	ca, cb  *heldConn
	scratch []byte
}

func newHandPair(t testing.TB, cfg Config) *handPair {
	cfg.populate()
	k1, k2 := token.NewKey(), token.NewKey()
	p := &handPair{ca: newHeldConn(), cb: newHeldConn(), scratch: make([]byte, secure.MaxPacket)}
	addr := netip.MustParseAddrPort("127.0.0.1:1")
	claims := &token.Claims{}
	p.a = newSession(&cfg, p.ca, newBatchWriter(p.ca), newTimers(), addr, claims,
		secure.NewSealer(k1, testProtocol), secure.NewOpener(k2, testProtocol), nil)
	p.b = newSession(&cfg, p.cb, newBatchWriter(p.cb), newTimers(), addr, claims,
		secure.NewSealer(k2, testProtocol), secure.NewOpener(k1, testProtocol), nil)
	return p
}

// deliver hands what from's socket holds to to, and says how many packets
// it were.
func (p *handPair) deliver(from *heldConn, to *Session) int {
	from.mu.Lock()
	pkts := from.pkts
	from.pkts = nil
	from.mu.Unlock()
	for _, pk := range pkts {
		to.handle(pk, p.scratch, time.Now().UnixNano(), nil)
	}
	from.mu.Lock()
	from.free = append(from.free, pkts...)
	if from.pkts == nil {
		from.pkts = pkts[:0]
	}
	from.mu.Unlock()
	return len(pkts)
}

// settle delivers both ways until nothing is in flight.
func (p *handPair) settle() {
	for p.deliver(p.ca, p.b)+p.deliver(p.cb, p.a) > 0 {
	}
}

func waitSnd(s *Session) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kcp == nil {
		return 0
	}
	return s.kcp.WaitSnd()
}

// A written segment leaves before Write returns, also right after another
// write: KCP's Update would hold it for up to an interval (kcpFlush).
func TestWriteLeavesAtOnce(t *testing.T) {
	p := newHandPair(t, Config{})
	buf := make([]byte, 16)
	for i := range 5 {
		_, err := p.a.Write([]byte{byte(i)})
		require.NoError(t, err)
		require.Equal(t, 1, p.ca.held(), "write %d: its segment left before Write returned", i)
		p.deliver(p.ca, p.b)
		n, err := p.b.Read(buf)
		require.NoError(t, err)
		require.Equal(t, []byte{byte(i)}, buf[:n])
		require.Equal(t, 1, p.deliver(p.cb, p.a), "the acknowledgement left at once: no Read was waiting")
		require.Zero(t, waitSnd(p.a))
	}
}

// The parts of kcp-go's core that core.go reaches inside are where it
// expects them; an upgrade of kcp-go that moves them fails here.
func TestKCPInternals(t *testing.T) {
	require.NotNil(t, srttIndex, "KCP.rx_srtt")
	require.NotNil(t, rings, "KCP's segment rings")
	cfg := Config{}
	cfg.populate()
	k := newCore(&cfg, func([]byte) {})
	require.Equal(t, []int{ringSlots, ringSlots, ringSlots}, ringCaps(k), "the rings start small")

	p := newHandPair(t, Config{})
	big := bytes.Repeat([]byte("x"), 20*mss) // more segments than the rings start with
	_, err := p.a.Write(big)
	require.NoError(t, err)
	time.Sleep(30 * time.Millisecond) // a round trip the acknowledgements will measure
	p.settle()
	got := make([]byte, len(big))
	for n := 0; n < len(got); {
		m, err := p.b.Read(got[n:])
		require.NoError(t, err)
		n += m
	}
	require.Equal(t, big, got, "the rings grew as they had to")
	require.GreaterOrEqual(t, p.a.RTT(), 25*time.Millisecond, "RTT is KCP's srtt")
	require.Less(t, p.a.RTT(), time.Second)
}

// An idle core gives back what it holds for reuse: grown rings, its
// receive heap's slice (and the stale buffer reference in it) and its
// flush buffer. A core that carried data within coreTrimAfter keeps them,
// and a trimmed one works on as before.
func TestIdleCoreTrim(t *testing.T) {
	require.NotNil(t, idle, "KCP's layout for the idle trim")
	require.True(t, bufferOK, "KCP.buffer")
	p := newHandPair(t, Config{})
	exchange := func(msg []byte) {
		t.Helper()
		_, err := p.a.Write(msg)
		require.NoError(t, err)
		p.settle()
		got := make([]byte, len(msg))
		for n := 0; n < len(got); {
			m, err := p.b.Read(got[n:])
			require.NoError(t, err)
			n += m
		}
		require.Equal(t, msg, got)
		p.settle()
	}
	exchange(bytes.Repeat([]byte("y"), 10*mss)) // grows b's receive rings
	heapCap := func(s *Session) int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return reflect.ValueOf(s.kcp).Elem().Field(idle.rcvBuf).Elem().Field(idle.segments).Cap()
	}
	lent := func(s *Session) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return *coreBuffer(s.kcp) == nil
	}
	require.Greater(t, heapCap(p.b), 0, "the receive heap keeps its slice, with the stale slot")
	require.Greater(t, slices.Max(ringCaps(p.b.kcp)), ringSlots, "a ring grew")

	now := time.Now()
	p.b.trimIdle(now)                        // first look
	p.b.trimIdle(now.Add(coreTrimAfter / 2)) // too soon
	require.False(t, lent(p.b), "a core used within coreTrimAfter is not trimmed")
	p.b.trimIdle(now.Add(coreTrimAfter))
	require.True(t, lent(p.b), "the idle core lent its flush buffer")
	require.Equal(t, 0, heapCap(p.b), "the heap's slice went")
	require.LessOrEqual(t, slices.Max(ringCaps(p.b.kcp)), ringSlots, "the rings shrank")

	exchange([]byte("after the trim"))   // b acknowledges: it flushes
	_, err := p.b.Write([]byte("reply")) // and sends
	require.NoError(t, err)
	p.settle()
	buf := make([]byte, 16)
	n, err := p.a.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "reply", string(buf[:n]))
	require.False(t, lent(p.b), "the core got a flush buffer back")

	p.b.trimIdle(now.Add(2 * coreTrimAfter))
	require.False(t, lent(p.b), "a core that carried data since starts its wait again")
}

// Bytes that arrived before the peer closed are read first, then the
// close reason; Write and datagrams fail after it.
func TestReadAfterPeerClosed(t *testing.T) {
	p := newHandPair(t, Config{})
	_, err := p.a.Write([]byte("last words"))
	require.NoError(t, err)
	require.NoError(t, p.a.Close(5, "bye"))
	p.deliver(p.ca, p.b)
	<-p.b.Done()
	buf := make([]byte, 4) // short: the rest waits for the next Read
	var got []byte
	for {
		n, err := p.b.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			ce, ok := transport.AsCloseError(err)
			require.True(t, ok, "%v", err)
			require.Equal(t, uint16(5), ce.Code)
			require.True(t, ce.Remote)
			break
		}
	}
	require.Equal(t, "last words", string(got))
	_, err = p.b.Write([]byte("x"))
	require.ErrorIs(t, err, net.ErrClosed)
	_, err = p.a.Write([]byte("x"))
	require.ErrorIs(t, err, net.ErrClosed)
	require.ErrorIs(t, p.b.SendDatagram([]byte("x")), net.ErrClosed)
	ok, err := p.b.TrySendDatagram([]byte("x"))
	require.True(t, ok)
	require.ErrorIs(t, err, net.ErrClosed)
	require.ErrorIs(t, p.b.AddDatagram(&transport.Batch{}, []byte("x")), net.ErrClosed)
}

// Write blocks while the send window is full, until acknowledgements make
// room, and returns an error if the session closes meanwhile.
func TestWriteWaitsForTheWindow(t *testing.T) {
	p := newHandPair(t, Config{Window: 8})
	_, err := p.a.Write(make([]byte, 8*mss)) // fills the window
	require.NoError(t, err)
	wrote := make(chan error, 1)
	go func() { _, err := p.a.Write([]byte("more")); wrote <- err }()
	select {
	case <-wrote:
		t.Fatal("Write returned with the window full")
	case <-time.After(50 * time.Millisecond):
	}
	p.deliver(p.ca, p.b)
	p.deliver(p.cb, p.a) // the acknowledgements
	select {
	case err := <-wrote:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Write never saw the window open")
	}

	_, err = p.a.Write(make([]byte, 8*mss))
	require.NoError(t, err)
	go func() { _, err := p.a.Write([]byte("more")); wrote <- err }()
	time.Sleep(10 * time.Millisecond)
	p.a.Close(0, "done")
	select {
	case err := <-wrote:
		require.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("a blocked Write outlived Close")
	}
}

// Data that wakes a waiting Read is acknowledged once that Read is done:
// by the reply it writes, or as it waits again.
func TestAckRidesOnTheReply(t *testing.T) {
	p := newHandPair(t, Config{})
	read, next := make(chan []byte), make(chan struct{})
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := p.b.Read(buf)
			if err != nil {
				close(read)
				return
			}
			read <- append([]byte(nil), buf[:n]...)
			<-next
		}
	}()
	waitReading := func() {
		require.Eventually(t, func() bool { p.b.mu.Lock(); defer p.b.mu.Unlock(); return p.b.rwait }, 5*time.Second, time.Millisecond)
	}
	waitReading()
	_, err := p.a.Write([]byte("ping"))
	require.NoError(t, err)
	p.deliver(p.ca, p.b)
	require.Equal(t, "ping", string(<-read))
	require.Zero(t, p.cb.held(), "the acknowledgement waits for the reply")
	_, err = p.b.Write([]byte("pong"))
	require.NoError(t, err)
	require.Equal(t, 1, p.deliver(p.cb, p.a), "one packet: the reply, carrying the acknowledgement")
	require.Zero(t, waitSnd(p.a), "ping acknowledged")
	p.deliver(p.ca, p.b) // pong's acknowledgement: b's Read was not waiting
	next <- struct{}{}

	// No reply: the acknowledgement leaves once the reader waits again.
	waitReading()
	_, err = p.a.Write([]byte("ping"))
	require.NoError(t, err)
	p.deliver(p.ca, p.b)
	require.Equal(t, "ping", string(<-read))
	require.Zero(t, p.cb.held())
	next <- struct{}{}
	waitReading()
	require.Equal(t, 1, p.deliver(p.cb, p.a))
	require.Zero(t, waitSnd(p.a))
	p.b.Close(0, "done")
	for range read {
	}
}

// A reader woken and then gone still gets its data acknowledged: the
// timer goroutine flushes what it owes within an interval.
func TestOwedAckLeavesWithoutTheReader(t *testing.T) {
	l := listen(t, Config{})
	c := dial(t, l, testToken(t, token.DevKey, time.Minute))
	s := accept(t, l)
	got := make(chan struct{})
	go func() {
		_, _ = s.Read(make([]byte, 64)) // one Read, never another
		close(got)
	}()
	require.Eventually(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.rwait }, 5*time.Second, time.Millisecond)
	_, err := c.Write([]byte("hello"))
	require.NoError(t, err)
	<-got
	require.Eventually(t, func() bool { return waitSnd(c) == 0 }, time.Second, time.Millisecond,
		"acknowledged without another Read")
}

// A receiver that stops reading shuts its window; once it reads again it
// tells the sender at once, not at the sender's next window probe (7 s).
func TestWindowReopensAfterRead(t *testing.T) {
	l := listen(t, Config{})
	c := dial(t, l, testToken(t, token.DevKey, time.Minute))
	s := accept(t, l)
	msg := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: 3.5 windows
	wrote := make(chan error, 1)
	go func() { _, err := c.Write(msg); wrote <- err }()
	time.Sleep(200 * time.Millisecond) // the window fills and shuts
	got := make([]byte, len(msg))
	done := make(chan error, 1)
	go func() {
		for n := 0; n < len(got); {
			m, err := s.Read(got[n:])
			if err != nil {
				done <- err
				return
			}
			n += m
		}
		done <- nil
	}()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the transfer stalled on a shut window")
	}
	require.Equal(t, msg, got)
	require.NoError(t, <-wrote)
}

// HandleDatagrams takes datagrams off the receive loop instead of the
// queue; AddDatagram puts many sessions' datagrams into one batch write.
func TestDatagramSeams(t *testing.T) {
	l := listen(t, Config{})
	c1 := dial(t, l, testToken(t, token.DevKey, time.Minute))
	s1 := accept(t, l)
	c2 := dial(t, l, testToken(t, token.DevKey, time.Minute))
	s2 := accept(t, l)

	got := make(chan string, 4)
	s1.HandleDatagrams(func(p []byte) { got <- string(p) })
	require.NoError(t, c1.SendDatagram([]byte("input")))
	select {
	case d := <-got:
		require.Equal(t, "input", d)
	case <-time.After(5 * time.Second):
		t.Fatal("the handler never saw the datagram")
	}

	var b transport.Batch
	require.NoError(t, s1.AddDatagram(&b, []byte("snap 1")))
	require.NoError(t, s2.AddDatagram(&b, []byte("snap 2")))
	require.Equal(t, 2, b.Len())
	require.NoError(t, b.Flush())
	for _, tc := range []struct {
		c    *Session
		want string
	}{{c1, "snap 1"}, {c2, "snap 2"}} {
		ctx, cancel := contextWithTimeout(5 * time.Second)
		d, err := tc.c.ReceiveDatagram(ctx)
		cancel()
		require.NoError(t, err)
		require.Equal(t, tc.want, string(d))
	}
	ok, err := s2.TrySendDatagram([]byte("now"))
	require.True(t, ok)
	require.NoError(t, err)
	ctx, cancel := contextWithTimeout(5 * time.Second)
	defer cancel()
	d, err := c2.ReceiveDatagram(ctx)
	require.NoError(t, err)
	require.Equal(t, "now", string(d))
	require.Error(t, s1.AddDatagram(&b, make([]byte, secure.MaxPayload+1)))
}

// The hot paths allocate nothing in steady state: datagrams in and out,
// acknowledgements in, batch writes. A reliable exchange costs the four
// allocations kcp-go's core makes, none of ours: its receive heap boxes
// each data segment twice (container/heap's Push and Pop take any), and
// returning a segment's buffer to its sync.Pool boxes the slice, on each
// side.
func TestHotPathsDoNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates, and drops pooled buffers")
	}
	p := newHandPair(t, Config{})
	msg := make([]byte, 64)
	var handled int
	p.b.HandleDatagrams(func([]byte) { handled++ })
	dgram := func() {
		_ = p.a.SendDatagram(msg)
		p.deliver(p.ca, p.b)
	}
	dgram()
	require.Zero(t, testing.AllocsPerRun(200, dgram), "a datagram sent and handled")
	require.Positive(t, handled)

	buf := make([]byte, 256)
	exchange := func() {
		_, _ = p.a.Write(msg)
		p.deliver(p.ca, p.b) // data in: kcp-go's heap, 2
		_, _ = p.b.Read(buf)
		p.deliver(p.cb, p.a) // acknowledgement in: both sides' pool, 2
	}
	for range 100 {
		exchange()
	}
	require.LessOrEqual(t, testing.AllocsPerRun(200, exchange), 4.0, "a reliable write, its input, read and acknowledgement")

	// AddDatagram and a batch write on a real socket.
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer sink.Close()
	go func() {
		b := make([]byte, 2048)
		for {
			if _, err := sink.Read(b); errors.Is(err, net.ErrClosed) {
				return
			}
		}
	}()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer conn.Close()
	w := newBatchWriter(conn)
	s := p.a
	s.bw, s.raddr = w, sink.LocalAddr().(*net.UDPAddr)
	var b transport.Batch
	add := func() {
		for range 8 {
			_ = s.AddDatagram(&b, msg)
		}
		_ = b.Flush()
	}
	add()
	require.Zero(t, testing.AllocsPerRun(200, add), "AddDatagram and Flush (WriteBatch)")
	pkts := []transport.Packet{{Buf: msg, Addr: s.raddr}, {Buf: msg, Addr: s.raddr}}
	require.Zero(t, testing.AllocsPerRun(200, func() { _ = w.WriteBatch(pkts) }), "WriteBatch")
}

// Whatever a peer seals, its KCP payload panics nothing: it is dropped and
// counted, or taken.
func TestPeerKCPGarbage(t *testing.T) {
	p := newHandPair(t, Config{})
	rng := rand.New(rand.NewPCG(3, 4))
	seg := make([]byte, 0, secure.MaxPayload)
	for range 20000 {
		seg = seg[:0]
		for len(seg)+kcpgo.IKCP_OVERHEAD <= secure.MaxPayload && rng.IntN(3) > 0 {
			n := rng.IntN(64)
			if len(seg)+kcpgo.IKCP_OVERHEAD+n > secure.MaxPayload {
				n = 0
			}
			seg = binary.LittleEndian.AppendUint32(seg, uint32(kcpConv-rng.IntN(2)+rng.IntN(2)))
			seg = append(seg, byte(kcpgo.IKCP_CMD_PUSH+rng.IntN(5)-rng.IntN(2)), byte(rng.Uint32()))
			seg = binary.LittleEndian.AppendUint16(seg, uint16(rng.Uint32()))
			seg = binary.LittleEndian.AppendUint32(seg, rng.Uint32())
			seg = binary.LittleEndian.AppendUint32(seg, uint32(rng.IntN(600)))
			seg = binary.LittleEndian.AppendUint32(seg, uint32(rng.IntN(600)))
			ln := uint32(n)
			if rng.IntN(10) == 0 {
				ln = rng.Uint32()
			}
			seg = binary.LittleEndian.AppendUint32(seg, ln)
			for range n {
				seg = append(seg, byte(rng.Uint32()))
			}
		}
		if rng.IntN(10) == 0 {
			seg = append(seg, make([]byte, rng.IntN(kcpgo.IKCP_OVERHEAD))...)
		}
		require.NoError(t, p.a.seal(secure.PacketKCP, seg))
		p.deliver(p.ca, p.b)
		p.cb.mu.Lock()
		p.cb.pkts = p.cb.pkts[:0]
		p.cb.mu.Unlock()
		if rng.IntN(50) == 0 {
			p.b.mu.Lock()
			if size := p.b.kcp.PeekSize(); size > 0 {
				p.b.recv(make([]byte, 16), size)
				p.b.rest = nil
			}
			p.b.mu.Unlock()
		}
	}
	require.Positive(t, p.b.Stats().Dropped, "malformed ones were counted")
}

func TestScan(t *testing.T) {
	seg := func(cmd byte, data int) []byte {
		b := binary.LittleEndian.AppendUint32(nil, kcpConv)
		b = append(b, cmd, 0, 0, 0)
		b = append(b, make([]byte, 12)...)
		b = binary.LittleEndian.AppendUint32(b, uint32(data))
		return append(b, make([]byte, data)...)
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, tc := range []struct {
		name       string
		p          []byte
		push, wask bool
	}{
		{"ack", seg(kcpgo.IKCP_CMD_ACK, 0), false, false},
		{"push", seg(kcpgo.IKCP_CMD_PUSH, 10), true, false},
		{"acks then push", cat(seg(kcpgo.IKCP_CMD_ACK, 0), seg(kcpgo.IKCP_CMD_ACK, 0), seg(kcpgo.IKCP_CMD_PUSH, 3)), true, false},
		{"wask after push", cat(seg(kcpgo.IKCP_CMD_PUSH, 100), seg(kcpgo.IKCP_CMD_WASK, 0)), true, true},
		{"length past the end", cat(seg(kcpgo.IKCP_CMD_ACK, 0), seg(kcpgo.IKCP_CMD_PUSH, 10)[:30]), true, false},
		{"short", []byte{1, 2, 3}, false, false},
	} {
		push, wask := scan(tc.p)
		require.Equal(t, tc.push, push, tc.name)
		require.Equal(t, tc.wask, wask, tc.name)
	}
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// ringCaps returns the slots of k's segment rings.
func ringCaps(k *kcpgo.KCP) []int {
	if rings == nil {
		return nil
	}
	v := reflect.ValueOf(k).Elem()
	var caps []int
	for _, i := range rings.rings {
		caps = append(caps, v.Field(i).Elem().Field(rings.elements).Len())
	}
	return caps
}
