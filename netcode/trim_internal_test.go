package netcode

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/mem"
	"github.com/roomwire/roomwire/reliable"
	"github.com/roomwire/roomwire/unreliable"
)

// An idleMark reports idle only once trims found it unused for the whole
// time, and a use starts the time again.
func TestIdleMark(t *testing.T) {
	var m idleMark
	t0 := time.Unix(100, 0)
	require.False(t, m.idle(t0.Add(time.Hour), trimAfter), "the first trim only starts the time")
	require.False(t, m.idle(t0.Add(time.Hour+trimAfter-time.Millisecond), trimAfter))
	require.True(t, m.idle(t0.Add(time.Hour+trimAfter), trimAfter))
	m.used = true
	require.False(t, m.idle(t0.Add(2*time.Hour), trimAfter), "used since")
	require.False(t, m.idle(t0.Add(2*time.Hour+trimAfter/2), trimAfter))
	require.True(t, m.idle(t0.Add(2*time.Hour+trimAfter), trimAfter))
}

// The copies' ring goes once empty and unused for trimAfter, never while
// it holds a frame, and copying works as before after it.
func TestFrameCopiesTrim(t *testing.T) {
	var c frameCopies
	c.on.Store(true)
	var bufs [copyDatagrams][]byte
	var tags [copyDatagrams]uint64
	t0 := time.Unix(100, 0)
	require.True(t, c.add(1, eventFrame(t, "a")))
	require.True(t, c.add(2, eventFrame(t, "b")))

	c.trim(t0)
	c.trim(t0.Add(time.Hour))
	require.NotNil(t, c.ring, "frames held: never trimmed")
	require.Equal(t, 1, c.build(t0, 1200, &bufs, &tags))
	c.acked(1, 2)
	require.Zero(t, c.n)

	c.trim(t0.Add(time.Hour + time.Second)) // unused since this trim
	c.trim(t0.Add(time.Hour + time.Second + trimAfter - time.Millisecond))
	require.NotNil(t, c.ring, "trimmed before trimAfter")
	c.trim(t0.Add(time.Hour + time.Second + trimAfter))
	require.Nil(t, c.ring, "not trimmed after trimAfter empty and unused")

	// Copying again: a new ring, and the frames come out as before.
	now := t0.Add(2 * time.Hour)
	require.True(t, c.add(3, eventFrame(t, "c")))
	require.True(t, c.add(4, eventFrame(t, "d")))
	require.Equal(t, 1, c.build(now, 1200, &bufs, &tags))
	require.Equal(t, uint64(3)<<32|4, tags[0])
	_, body, err := unreliable.ParseHeader(bufs[0])
	require.NoError(t, err)
	var got []string
	require.NoError(t, unreliable.ReliableFrames(body, 1024, func(n uint32, f []byte) {
		fr, err := reliable.ParseBody(reliable.FrameEvent, f[reliable.HeaderLen:])
		require.NoError(t, err)
		got = append(got, string(fr.Payload))
	}))
	require.Equal(t, []string{"c", "d"}, got)
	c.handled(5)
	require.Zero(t, c.n)
	require.Zero(t, c.bytes)

	// A frame added between two trims starts the time again.
	c.trim(now)
	require.True(t, c.add(5, eventFrame(t, "e")))
	c.acked(5, 5)
	c.trim(now.Add(trimAfter))
	require.NotNil(t, c.ring, "trimmed though a frame was added since the last trim")
}

// The replay log's buffers go once every kept frame is acknowledged and
// none was kept for trimAfter; what is kept after replays as before.
func TestResumeLogTrim(t *testing.T) {
	r := newResumeState(&peer{}, 1<<10)
	defer r.stop()
	t0 := time.Unix(100, 0)
	r.start(1)
	r.enabled.Store(true)
	r.keep(1, []byte("one"))
	r.keep(2, []byte("two"))
	r.trim(t0)
	r.trim(t0.Add(time.Hour))
	got, ok := r.from(1)
	require.True(t, ok)
	require.Equal(t, "onetwo", string(got), "unacknowledged frames: never trimmed")

	r.acked(3)
	require.NotZero(t, cap(r.buf))
	r.trim(t0.Add(time.Hour + time.Second))
	r.trim(t0.Add(time.Hour + time.Second + trimAfter - time.Millisecond))
	require.NotZero(t, cap(r.buf), "trimmed before trimAfter")
	r.trim(t0.Add(time.Hour + time.Second + trimAfter))
	require.Zero(t, cap(r.buf))
	require.Zero(t, cap(r.ends))

	got, ok = r.from(3)
	require.True(t, ok, "the peer has every frame: the replay is empty")
	require.Empty(t, got)
	_, ok = r.from(2)
	require.False(t, ok, "an acknowledged frame is not held")
	r.keep(3, []byte("three"))
	r.keep(4, []byte("four"))
	got, ok = r.from(3)
	require.True(t, ok)
	require.Equal(t, "threefour", string(got))
	r.acked(4)
	got, ok = r.from(4)
	require.True(t, ok)
	require.Equal(t, "four", string(got))
}

// The outbox's buffers go once nothing was written for trimAfter, never
// while frames wait, and frames go out whole after.
func TestOutboxTrim(t *testing.T) {
	var wrote []byte
	o := newOutbox(1<<20, func(b []byte) (int, error) { wrote = append(wrote, b...); return len(b), nil }, func(int) {})
	o.spawn = func(func()) bool { return false }
	send := func(s string) {
		b, ok := o.begin()
		require.True(t, ok)
		b, err := reliable.AppendEvent(b, "e", []byte(s))
		require.NoError(t, err)
		require.NoError(t, o.endQuiet(b))
	}
	send("a")
	require.NoError(t, o.flush())
	send("b")
	require.NoError(t, o.flush())
	require.NotZero(t, cap(o.buf))
	require.NotZero(t, cap(o.spare))

	t0 := time.Unix(100, 0)
	o.trim(t0)
	o.trim(t0.Add(trimAfter - time.Millisecond))
	require.NotZero(t, cap(o.spare), "trimmed before trimAfter")
	o.trim(t0.Add(trimAfter))
	require.Zero(t, cap(o.buf))
	require.Zero(t, cap(o.spare))

	// Queued but not written (corked): kept, whatever the time.
	o.cork()
	send("c")
	o.trim(t0.Add(time.Hour))
	o.trim(t0.Add(2 * time.Hour))
	require.NotZero(t, len(o.buf), "queued frames trimmed")
	o.corked = false
	require.NoError(t, o.flush())

	r := reliable.NewReader(bytes.NewReader(wrote), 1024)
	for i, want := range []string{"a", "b", "c"} {
		f, err := r.Next()
		require.NoError(t, err)
		require.Equal(t, want, string(f.Payload), "frame %d", i)
	}
	require.Equal(t, uint32(3), o.frames, "numbering goes on")
}

// The datagram queue lets the acks' window and its buffers go once nothing
// was sent for trimAfter, never while a sender holds the turn; sending and
// acks work as before after it, and a stale ack for a forgotten datagram
// counts nothing.
func TestDgramQueueTrim(t *testing.T) {
	var stats connStats
	var acks ackState
	sess := &boundedSession{}
	q := newDgramQueue(&stats, &acks, sess)
	q.spawn = func(func()) bool { return false }
	released := func() bool { // a window held is never idle as of time zero
		acks.mu.Lock()
		defer acks.mu.Unlock()
		return acks.sent.Trim(time.Time{}, math.MaxInt64)
	}
	for i := 0; i < 3; i++ {
		q.putNow(unreliable.KindEvent, []byte("x"), 0)
	}
	require.Equal(t, int64(3), sess.sends.Load(), "sent on the caller's goroutine")
	acks.record(unreliable.Header{Seq: 1, Ack: 3, AckBits: 0b11}, time.Now())
	rtt, _, acked, lost := acks.estimates()
	require.Equal(t, uint64(3), acked)

	now := time.Now()
	q.trim(now)
	require.False(t, released(), "trimmed with the last send just now")
	require.NotNil(t, q.scratch)

	later := now.Add(trimAfter + time.Second)
	q.turn.Lock()
	q.trim(later)
	q.turn.Unlock()
	require.False(t, released(), "trimmed while a sender held the turn")

	q.trim(later)
	require.True(t, released())
	require.Nil(t, q.scratch)
	gotRTT, _, gotAcked, gotLost := acks.estimates()
	require.Equal(t, rtt, gotRTT)
	require.Equal(t, acked, gotAcked)
	require.Equal(t, lost, gotLost)

	acks.record(unreliable.Header{Seq: 2, Ack: 3, AckBits: ^uint32(0)}, time.Now()) // stale
	_, _, gotAcked, _ = acks.estimates()
	require.Equal(t, acked, gotAcked)

	q.putNow(unreliable.KindEvent, []byte("y"), 7)
	require.Equal(t, int64(4), sess.sends.Load())
	require.False(t, released())
	var tags []uint64
	acks.onTag = func(tag uint64) { tags = append(tags, tag) }
	acks.record(unreliable.Header{Seq: 3, Ack: 4, AckBits: ^uint32(0)}, time.Now())
	_, _, gotAcked, _ = acks.estimates()
	require.Equal(t, acked+1, gotAcked, "only the datagram sent after the trim is acknowledged")
	require.Equal(t, []uint64{7}, tags)
	require.Zero(t, acks.pending())
}

// A served connection, after reliable events both ways, datagrams and
// copies of frames, lets every buffer go once trimmed at a time past
// trimAfter with nothing in flight (the housekeeping walk's call, with its
// clock moved on), and then works as before: events both ways, copies,
// datagrams and their acks.
func TestConnTrimmedWhenIdle(t *testing.T) {
	l := mem.NewListener("trim")
	srv, err := NewServer(Config{Listeners: []transport.Listener{l}, ReliableCopies: CopiesAlways})
	require.NoError(t, err)
	conns := make(chan *Conn, 1)
	srv.OnConnect(func(c *Conn) { conns <- c })
	srv.On("ping", func(c *Conn, p []byte) {
		_ = c.Emit("pong", p)
		_ = c.EmitUnreliable("upong", p)
	})
	serveInTest(t, srv)

	cl := NewClient(ClientConfig{
		ReliableCopies: CopiesAlways,
		Dial:           func(ctx context.Context, _ string) (transport.Session, error) { return l.Dial(ctx) },
	})
	pongs, upongs := make(chan string, 16), make(chan string, 16)
	cl.On("pong", func(p []byte) { pongs <- string(p) })
	cl.On("upong", func(p []byte) { upongs <- string(p) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, cl.Connect(ctx, "mem://trim"))
	defer cl.Close()
	// The client's clock PINGs come quickly for a moment after connecting,
	// then not for clockIdlePeriod (no snapshots flow here): the trims
	// below wait for that quiet, or a PONG may hold the outbox.
	quietAt := time.Now().Add(clockBurst*clockBurstGap + 500*time.Millisecond)
	c := recvOrFail(t, ctx, conns)

	exchange := func(round int) {
		t.Helper()
		for i := 0; i < 3; i++ {
			p := fmt.Sprintf("%d.%d", round, i)
			require.NoError(t, cl.Emit("ping", []byte(p)))
			require.Equal(t, p, recvOrFail(t, ctx, pongs))
			require.NoError(t, cl.EmitUnreliable("uping", nil)) // the client's datagrams carry the server's acks
		}
		for len(upongs) > 0 {
			<-upongs
		}
	}
	// The server copies once the client has copied and it judged the path
	// again (rejudgeEvery frames or rejudgeAfter later): rounds until then.
	for round := 1; c.Stats().CopiesSent == 0; round++ {
		require.Less(t, round, 100, "frames copied")
		exchange(round)
		time.Sleep(rejudgeAfter / 5)
	}
	require.True(t, c.res.on(), "resume granted")

	// Everything the server sent was handled (ACKED) and no datagram
	// waits for its ack, or trim rightly keeps what it holds.
	settled := func() bool {
		c.res.mu.Lock()
		kept := len(c.res.ends)
		c.res.mu.Unlock()
		c.copies.mu.Lock()
		held := c.copies.n
		c.copies.mu.Unlock()
		_ = cl.EmitUnreliable("uping", nil)
		return kept == 0 && held == 0 && c.acks.pending() == 0
	}
	require.Eventually(t, settled, 10*time.Second, 5*time.Millisecond)
	time.Sleep(time.Until(quietAt))
	require.Eventually(t, settled, 10*time.Second, 5*time.Millisecond)

	later := time.Now().Add(time.Hour)
	c.trim(later)
	c.trim(later.Add(trimAfter))
	c.acks.mu.Lock()
	released := c.acks.sent.Trim(time.Time{}, math.MaxInt64)
	c.acks.mu.Unlock()
	require.True(t, released, "the acks' window")
	// Read under each lock, assert after it: a failure must not leave a
	// lock held for the cleanup's Close to wait on.
	c.copies.mu.Lock()
	ring := c.copies.ring
	c.copies.mu.Unlock()
	require.Nil(t, ring, "the copies' ring")
	c.res.mu.Lock()
	logCap := cap(c.res.buf)
	c.res.mu.Unlock()
	require.Zero(t, logCap, "the replay log")
	c.out.mu.Lock()
	outCap := cap(c.out.buf) + cap(c.out.spare)
	c.out.mu.Unlock()
	require.Zero(t, outCap, "the outbox")
	c.dq.turn.Lock()
	scratch, copyBufs := c.dq.scratch, c.dq.copyBufs
	c.dq.turn.Unlock()
	require.Nil(t, scratch, "the datagram scratch")
	require.Nil(t, copyBufs, "the copies' datagrams")
	before := c.Stats()

	exchange(1000)
	require.Eventually(t, settled, 10*time.Second, 5*time.Millisecond)
	after := c.Stats()
	require.Greater(t, after.CopiesSent, before.CopiesSent, "frames copied after the trim")
	require.Greater(t, after.DatagramsAcked, before.DatagramsAcked, "datagrams acknowledged after the trim")
	require.Equal(t, before.DatagramsLost, after.DatagramsLost, "no loss on a clean pipe")
}
