package reliable

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"
)

// countingReader counts the bytes its Reader hands out.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// zeros is an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// loopReader serves b over and over, for steady-state measurements.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.b[l.off:])
		n += c
		l.off = (l.off + c) % len(l.b)
	}
	return n, nil
}

func TestNewReaderLimit(t *testing.T) {
	cases := []struct{ in, want int }{
		{0, DefaultMaxFrame},
		{-1, DefaultMaxFrame},
		{-1 << 40, DefaultMaxFrame},
		{1, 1},
		{1024, 1024},
		{MaxFrameLimit, MaxFrameLimit},
		{MaxFrameLimit + 1, MaxFrameLimit},
		{1 << 40, MaxFrameLimit},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, NewReader(bytes.NewReader(nil), tc.in).max, "NewReader(_, %d)", tc.in)
	}

	// The default limit is enforced, not just recorded.
	r := NewReader(bytes.NewReader([]byte{byte(FrameEvent), 0x01, 0x00, 0x01}), 0)
	_, err := r.Next()
	require.ErrorIs(t, err, ErrFrameTooLarge)
}

// A header claiming 16 MiB against a 1 KiB limit fails as soon as the header
// is read: no body buffer is allocated and the body is not read.
func TestReaderRejectsBeforeAllocating(t *testing.T) {
	src := &countingReader{r: io.MultiReader(bytes.NewReader([]byte{byte(FrameEvent), 0xff, 0xff, 0xff}), zeros{})}
	r := NewReader(src, 1024)
	f, err := r.Next()
	require.ErrorIs(t, err, ErrFrameTooLarge)
	require.NotErrorIs(t, err, ErrTruncated)
	require.Equal(t, FrameEvent, f.Type, "the type of the refused frame is reported")
	require.Zero(t, cap(r.buf), "the body buffer must not grow for a refused frame")
	require.Less(t, src.n, int64(64<<10), "the 16 MiB body must not be read")

	// The same through the raw header parser, measured in bytes: refusing
	// costs a small error value, never anything near the claimed 16 MiB.
	hdr := []byte{byte(FrameEvent), 0xff, 0xff, 0xff}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		_, _, err := ParseHeader(hdr, 1024)
		require.ErrorIs(t, err, ErrFrameTooLarge)
	}
	runtime.ReadMemStats(&after)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "100 refusals of 16 MiB bodies")
	// A header within the limit costs nothing.
	within := []byte{byte(FrameEvent), 0x00, 0x04, 0x00}
	require.Zero(t, testing.AllocsPerRun(100, func() { _, _, _ = ParseHeader(within, 1024) }))
}

func TestReaderLimitBoundary(t *testing.T) {
	const max = 1024
	atLimit := ok(t)(AppendEvent(nil, "e", make([]byte, max-2))) // body 1 + 1 + (max-2)
	overLimit := ok(t)(AppendEvent(nil, "e", make([]byte, max-1)))

	r := NewReader(bytes.NewReader(atLimit), max)
	f, err := r.Next()
	require.NoError(t, err)
	require.Len(t, f.Payload, max-2)
	require.Equal(t, max, cap(r.buf))

	r = NewReader(bytes.NewReader(overLimit), max)
	_, err = r.Next()
	require.ErrorIs(t, err, ErrFrameTooLarge)
	require.Zero(t, cap(r.buf))
}

func TestReaderTruncated(t *testing.T) {
	ping := AppendPing(nil, 42)
	event := ok(t)(AppendEvent(nil, "chat", []byte("hello")))
	cases := []struct {
		name   string
		stream []byte
		good   int // complete frames before the cut
	}{
		{"1 header byte", ping[:1], 0},
		{"2 header bytes", ping[:2], 0},
		{"3 header bytes", ping[:3], 0},
		{"header only", ping[:HeaderLen], 0},
		{"1 body byte", ping[:HeaderLen+1], 0},
		{"body missing last byte", ping[:len(ping)-1], 0},
		{"event cut in name", event[:HeaderLen+3], 0},
		{"frame then partial header", append(append([]byte(nil), ping...), event[:2]...), 1},
		{"frame then partial body", append(append([]byte(nil), ping...), event[:len(event)-1]...), 1},
	}
	for _, tc := range cases {
		for rname, wrap := range map[string]func(io.Reader) io.Reader{
			"whole":    func(r io.Reader) io.Reader { return r },
			"one byte": iotest.OneByteReader,
			"data EOF": iotest.DataErrReader,
		} {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				r := NewReader(wrap(bytes.NewReader(tc.stream)), 0)
				for i := 0; i < tc.good; i++ {
					_, err := r.Next()
					require.NoError(t, err)
				}
				_, err := r.Next()
				require.ErrorIs(t, err, ErrTruncated)
				require.ErrorIs(t, err, io.ErrUnexpectedEOF)
				require.NotErrorIs(t, err, io.EOF, "a cut inside a frame is not a clean end")
			})
		}
	}

	t.Run("empty stream is a clean end", func(t *testing.T) {
		_, err := NewReader(bytes.NewReader(nil), 0).Next()
		require.Equal(t, io.EOF, err)
	})
	t.Run("zero-length body at end of stream", func(t *testing.T) {
		// A HELLO body must be >= 2 bytes, so a complete 0-length HELLO
		// frame is a body error, not a stream truncation.
		r := NewReader(bytes.NewReader([]byte{byte(FrameHello), 0, 0, 0}), 0)
		_, err := r.Next()
		require.ErrorIs(t, err, ErrTruncated)
		require.NotErrorIs(t, err, io.ErrUnexpectedEOF)
		_, err = r.Next()
		require.Equal(t, io.EOF, err)
	})
}

func TestReaderUnderlyingError(t *testing.T) {
	boom := errors.New("boom")
	ping := AppendPing(nil, 1)
	cases := map[string]io.Reader{
		"before header": iotest.ErrReader(boom),
		"inside header": io.MultiReader(bytes.NewReader(ping[:2]), iotest.ErrReader(boom)),
		"inside body":   io.MultiReader(bytes.NewReader(ping[:HeaderLen+3]), iotest.ErrReader(boom)),
		"before body":   io.MultiReader(bytes.NewReader(ping[:HeaderLen]), iotest.ErrReader(boom)),
		"after 1 frame": io.MultiReader(bytes.NewReader(ping), iotest.ErrReader(boom)),
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			r := NewReader(src, 0)
			f, err := r.Next()
			if name == "after 1 frame" {
				require.NoError(t, err)
				require.Equal(t, uint64(1), f.Time)
				_, err = r.Next()
			}
			require.ErrorIs(t, err, boom)
			require.NotErrorIs(t, err, ErrTruncated)
		})
	}
}

// A frame whose body is malformed is consumed whole, so the Reader stays in
// step with the stream and the caller may decide to carry on.
func TestReaderBodyErrorsKeepSync(t *testing.T) {
	var s []byte
	s = append(s, 0xee, 0, 0, 3, 1, 2, 3)                        // unknown type
	s = append(s, byte(FrameEvent), 0, 0, 2, 0, 'x')             // empty name
	s = append(s, byte(FramePing), 0, 0, 7, 1, 2, 3, 4, 5, 6, 7) // short ping
	s = append(s, byte(FrameWelcome), 0, 0, 1, 0)                // short welcome
	s = append(s, byte(FrameClose), 0, 1, 3)                     // 259-byte close body
	s = append(s, make([]byte, 259)...)
	s = AppendPong(s, 5, 6)
	want := []error{ErrUnknownFrame, ErrBadName, ErrBadFrame, ErrBadFrame, ErrBadFrame}

	r := NewReader(bytes.NewReader(s), 0)
	for i, w := range want {
		_, err := r.Next()
		require.ErrorIs(t, err, w, "frame %d", i)
	}
	f, err := r.Next()
	require.NoError(t, err)
	requireFrame(t, Frame{Type: FramePong, Echo: 5, Time: 6}, f)
	_, err = r.Next()
	require.Equal(t, io.EOF, err)
}

func TestReaderBufferReuse(t *testing.T) {
	var s []byte
	s = ok(t)(AppendEvent(s, "a", make([]byte, 10)))
	s = ok(t)(AppendEvent(s, "b", make([]byte, 1000)))
	s = ok(t)(AppendEvent(s, "c", make([]byte, 10)))
	s = ok(t)(AppendEvent(s, "d", make([]byte, 998)))

	r := NewReader(bytes.NewReader(s), 0)
	_, err := r.Next()
	require.NoError(t, err)
	_, err = r.Next()
	require.NoError(t, err)
	require.Equal(t, 1002, cap(r.buf), "grows to the largest body")
	first := &r.buf[:1][0]
	for _, name := range []string{"c", "d"} {
		f, err := r.Next()
		require.NoError(t, err)
		require.Equal(t, name, string(f.Name))
		require.Same(t, first, &r.buf[:1][0], "no new buffer for smaller frames")
		require.Same(t, &r.buf[:2][1], &f.Name[0], "the frame aliases the reader's buffer") // name starts at body[1]
	}
}

func TestReaderNextAllocs(t *testing.T) {
	var s []byte
	s = ok(t)(AppendEvent(s, "move", bytes.Repeat([]byte{7}, 64)))
	s = AppendPing(s, 99)
	s = ok(t)(AppendRequest(s, 3, "$join", []byte("arena")))
	s = AppendClose(s, CloseNormal, "bye")
	r := NewReader(&loopReader{b: s}, 0)
	for i := 0; i < 8; i++ { // warm up: the body buffer reaches its size
		_, err := r.Next()
		require.NoError(t, err)
	}
	var f Frame
	var err error
	allocs := testing.AllocsPerRun(1000, func() { f, err = r.Next() })
	require.NoError(t, err)
	require.NotZero(t, f.Type)
	require.Zero(t, allocs)
}

// Partial reports a frame begun but not yet whole, and only that: a whole
// frame in the buffer and the wait between frames are not partial.
func TestReaderPartial(t *testing.T) {
	ev, err := AppendEvent(nil, "e", []byte("payload"))
	require.NoError(t, err)
	pr, pw := io.Pipe()
	r := NewReader(pr, 0)
	var calls []bool
	r.Partial = func(w bool) { calls = append(calls, w) }
	got := make(chan error, 1)
	go func() {
		_, err := r.Next()
		got <- err
	}()
	_, _ = pw.Write(ev[:6]) // the header and a little of the body
	select {
	case err := <-got:
		t.Fatalf("Next returned before the frame was whole: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	_, _ = pw.Write(ev[6:])
	require.NoError(t, <-got)
	require.Equal(t, []bool{true, false}, calls)

	calls = nil
	go func() { _, _ = pw.Write(append(append([]byte{}, ev...), ev...)) }()
	for i := 0; i < 2; i++ {
		_, err := r.Next()
		require.NoError(t, err)
	}
	require.Empty(t, calls, "whole frames are not partial")

	go func() { _, _ = pw.Write(ev[:2]) }() // a header cut short
	go func() { time.Sleep(20 * time.Millisecond); _ = pw.Close() }()
	_, err = r.Next()
	require.ErrorIs(t, err, ErrTruncated)
	require.Equal(t, []bool{true, false}, calls)
}

// Park gives the read buffer back only between frames, keeps a small body
// buffer and drops a large one, and the Reader reads on after it as
// before, with no allocation for the small frames once warm.
func TestReaderPark(t *testing.T) {
	var src bytes.Buffer
	r := NewReader(&src, 0)
	require.True(t, r.Park(), "a Reader that never read parks")
	require.Zero(t, r.Buffered())

	src.Write(ok(t)(AppendEvent(nil, "a", make([]byte, 10))))
	src.Write(ok(t)(AppendEvent(nil, "b", make([]byte, 10))))
	f, err := r.Next()
	require.NoError(t, err)
	require.Equal(t, "a", string(f.Name))
	require.NotZero(t, r.Buffered(), "the second frame is buffered")
	require.False(t, r.Park(), "bytes unread: no parking")
	f, err = r.Next()
	require.NoError(t, err)
	require.Equal(t, "b", string(f.Name))
	small := &r.buf[:1][0]
	require.True(t, r.Park())
	require.Nil(t, r.r, "the read buffer went back")
	require.Same(t, small, &r.buf[:1][0], "a small body buffer is kept")

	src.Write(ok(t)(AppendEvent(nil, "c", make([]byte, 1000))))
	f, err = r.Next()
	require.NoError(t, err)
	require.Equal(t, "c", string(f.Name))
	require.Len(t, f.Payload, 1000)
	require.True(t, r.Park())
	require.Nil(t, r.buf, "a large body buffer is dropped")

	frame := ok(t)(AppendEvent(nil, "d", make([]byte, 10)))
	src.Write(frame)
	_, err = r.Next() // warm: the body buffer again
	require.NoError(t, err)
	allocs := testing.AllocsPerRun(100, func() {
		require.True(t, r.Park())
		src.Write(frame)
		f, err = r.Next()
	})
	require.NoError(t, err)
	require.Equal(t, "d", string(f.Name))
	require.Zero(t, allocs, "parking and reading a small frame again")
}
