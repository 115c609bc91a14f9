package netcode

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/reliable"
	"github.com/roomwire/roomwire/unreliable"
)

func eventFrame(t *testing.T, payload string) []byte {
	t.Helper()
	b, err := reliable.AppendEvent(nil, "e", []byte(payload))
	require.NoError(t, err)
	return b
}

// The sequencer hands each frame on once, in stream order, whichever path
// brings it first.
func TestFrameSeq(t *testing.T) {
	var got []string
	var s frameSeq
	s.init(1024, func(f reliable.Frame) { got = append(got, string(f.Payload)) })
	stream := func(num uint32, p string) bool {
		f, err := reliable.ParseBody(reliable.FrameEvent, eventFrame(t, p)[reliable.HeaderLen:])
		require.NoError(t, err)
		return s.fromStream(num, f)
	}
	copyOf := func(num uint32, p string) (bool, bool) { return s.fromCopy(num, eventFrame(t, p)) }

	require.True(t, stream(1, "a"))
	d, bad := copyOf(1, "a")
	require.False(t, d || bad, "a copy of a delivered frame is dropped")
	d, _ = copyOf(2, "b")
	require.True(t, d, "the next frame's copy is delivered at once")
	require.False(t, stream(2, "b"), "and the stream's frame is then skipped")
	d, _ = copyOf(4, "d")
	require.False(t, d, "a copy ahead of a missing frame waits")
	d, _ = copyOf(4, "d")
	require.False(t, d, "twice")
	d, _ = copyOf(3, "c")
	require.True(t, d, "the missing frame delivers the one held after it")
	require.False(t, stream(3, "c"))
	require.False(t, stream(4, "d"))
	require.True(t, stream(5, "e"))
	d, _ = copyOf(5+maxHeld+1, "far")
	require.False(t, d, "a copy too far ahead is dropped")
	require.True(t, stream(6, "f"))
	require.Equal(t, []string{"a", "b", "c", "d", "e", "f"}, got)

	for name, fr := range map[string][]byte{
		"close":     reliable.AppendClose(nil, 0, "x"),
		"hello":     mustHello(t),
		"cut":       eventFrame(t, "x")[:6],
		"over":      eventFrame(t, string(make([]byte, 2000))), // past the 1024-byte frame limit
		"bad event": {0x03, 0, 0, 1, 0},                        // name length 0
	} {
		d, bad := s.fromCopy(7, fr)
		require.False(t, d, name)
		require.True(t, bad, name)
	}
	require.True(t, stream(7, "g"), "bad copies change nothing")

	// The ring of copies held ahead goes once none waits and none was held
	// for trimAfter; never while one waits.
	require.NotNil(t, s.held)
	t0 := time.Unix(100, 0)
	d, _ = copyOf(9, "i") // ahead of 8
	require.False(t, d)
	s.trim(t0)
	s.trim(t0.Add(time.Hour))
	require.NotNil(t, s.held, "a copy waits: kept")
	require.True(t, stream(8, "h"), "and delivered with the one before it")
	require.Equal(t, "i", got[len(got)-1])
	s.trim(t0.Add(2 * time.Hour))
	require.NotNil(t, s.held, "held within trimAfter")
	s.trim(t0.Add(2*time.Hour + trimAfter))
	require.Nil(t, s.held, "let go")
	d, _ = copyOf(11, "k")
	require.False(t, d)
	require.NotNil(t, s.held, "made again at the next copy ahead")
	require.True(t, stream(10, "j"))
	require.Equal(t, []string{"j", "k"}, got[len(got)-2:])

	// Numbers wrap.
	got = got[:0]
	s.next = 0xffffffff
	d, _ = copyOf(0, "after")
	require.False(t, d)
	require.True(t, stream(0xffffffff, "before"))
	require.Equal(t, []string{"before", "after"}, got)
	require.Equal(t, uint32(1), s.next)
}

func mustHello(t *testing.T) []byte {
	b, err := reliable.AppendHello(nil, reliable.Version, nil)
	require.NoError(t, err)
	return b
}

// Copies go out in runs of consecutive numbers, again every copyResend
// until acknowledged, and never past copyMaxAge or the limits.
func TestFrameCopies(t *testing.T) {
	var c frameCopies
	c.on.Store(true)
	require.False(t, c.add(1, reliable.AppendClose(nil, 0, "bye")), "CLOSE is never copied")
	require.False(t, c.add(1, eventFrame(t, string(make([]byte, maxCopyFrame)))), "too large")
	for _, n := range []uint32{1, 2, 4} {
		require.True(t, c.add(n, eventFrame(t, "x")))
	}
	var bufs [copyDatagrams][]byte
	var tags [copyDatagrams]uint64
	now := time.Unix(100, 0)
	n := c.build(now, 1200, &bufs, &tags)
	require.Equal(t, 2, n, "1-2, then 4")
	require.Equal(t, uint64(1)<<32|2, tags[0])
	require.Equal(t, uint64(4)<<32|4, tags[1])
	var nums []uint32
	h, body, err := unreliable.ParseHeader(bufs[0])
	require.NoError(t, err)
	require.Equal(t, unreliable.KindReliable, h.Kind)
	require.NoError(t, unreliable.ReliableFrames(body, 1024, func(n uint32, _ []byte) { nums = append(nums, n) }))
	require.Equal(t, []uint32{1, 2}, nums)

	require.Zero(t, c.build(now.Add(copyResend/2), 1200, &bufs, &tags), "not again before copyResend")
	c.acked(1, 2)
	n = c.build(now.Add(copyResend), 1200, &bufs, &tags)
	require.Equal(t, 1, n, "only 4 is left")
	require.Equal(t, uint64(4)<<32|4, tags[0])
	require.Zero(t, c.build(now.Add(copyMaxAge+time.Millisecond), 1200, &bufs, &tags), "past copyMaxAge it is the stream's")
	require.Zero(t, c.n)
	require.Zero(t, c.bytes)

	// Limits: entries and bytes.
	for i := uint32(0); i < maxCopies; i++ {
		require.True(t, c.add(10+i, eventFrame(t, "y")))
	}
	require.False(t, c.add(100, eventFrame(t, "y")), "no more than maxCopies")
	c.acked(10, 10+maxCopies-1)
	require.Zero(t, c.n)
	big := string(make([]byte, 1000))
	added := 0
	for i := uint32(200); c.add(i, eventFrame(t, big)); i++ {
		added++
	}
	require.LessOrEqual(t, c.bytes, maxCopyBytes)
	require.Equal(t, maxCopyBytes/(1000+reliable.HeaderLen+2), added)

	// A smaller datagram limit splits runs; update forgets all when off.
	n = c.build(now.Add(10*time.Second), 1000+reliable.HeaderLen+2+unreliable.HeaderLen+unreliable.ReliableHeaderLen, &bufs, &tags)
	require.Equal(t, copyDatagrams, n, "one frame a datagram, at most copyDatagrams a round")
	c.mode = CopiesOff
	require.False(t, c.update())
	require.False(t, c.add(999, eventFrame(t, "z")))
	require.Zero(t, c.n)
}

// The peer's ACKED retires the copies of the frames it handled, across a
// wrap of the frame numbers, and leaves those after them.
func TestFrameCopiesHandled(t *testing.T) {
	var c frameCopies
	c.on.Store(true)
	first := uint32(math.MaxUint32 - 1)
	for i := uint32(0); i < 4; i++ {
		require.True(t, c.add(first+i, eventFrame(t, "x")))
	}
	c.handled(first) // nothing before the first
	require.Equal(t, 4, c.n)
	c.handled(first + 3) // the wrap: MaxUint32-1, MaxUint32 and 0 were handled
	require.Equal(t, 1, c.n)
	var bufs [copyDatagrams][]byte
	var tags [copyDatagrams]uint64
	require.Equal(t, 1, c.build(time.Unix(100, 0), 1200, &bufs, &tags))
	require.Equal(t, uint64(first+3)<<32|uint64(first+3), tags[0], "only frame 1 is copied")
	c.handled(first + 4)
	require.Zero(t, c.n)
	require.Zero(t, c.bytes)
}

// Building a round of copies does not allocate once the buffers grew.
func TestFrameCopiesAllocs(t *testing.T) {
	var c frameCopies
	c.on.Store(true)
	frame := eventFrame(t, "hello")
	var bufs [copyDatagrams][]byte
	var tags [copyDatagrams]uint64
	for i := range bufs {
		bufs[i] = make([]byte, 0, unreliable.MaxDatagram)
	}
	now := time.Unix(100, 0)
	num := uint32(1)
	round := func() {
		c.add(num, frame)
		num++
		now = now.Add(copyResend)
		c.build(now, 1200, &bufs, &tags)
		c.acked(num-1, num-1)
	}
	for i := 0; i < maxCopies; i++ {
		round()
	}
	require.Zero(t, testing.AllocsPerRun(200, round))
}
